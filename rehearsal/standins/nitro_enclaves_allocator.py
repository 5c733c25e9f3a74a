#!/usr/bin/python3
"""Stand-in for /usr/bin/nitro-enclaves-allocator, the program nitro-enclaves-allocator.service runs.

Contract (aws/aws-nitro-enclaves-cli, bootstrap/nitro-enclaves-allocator, read at 2950b36): read
/etc/nitro_enclaves/allocator.yaml with `parse_config` (here: rehearsal.contracts.allocator_config, the same
code the config tests use), then reserve `cpu_count` CPUs as whole cores, never CPU 0 or its siblings
(`configure_cpu_pool_by_cpu_count`), and `memory_mib` as hugepages rounded up to the smallest page size
(`set_required_hugepages`); any failure prints `Error: <message>` on stdout and exits 1. The rehearsal's
machine model (StandinSettings): the instance's vCPUs and threads per core, and its memory less what the
kernel and boot services hold (`os_reserved_mib`); memory beyond that cannot become hugepages. It reserves
nothing for real: it records the pool in /run/nitro_enclaves/rehearsal-pool.json for nitro-cli.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.contracts.allocator_config import (
    DEFAULT_PATH,
    AllocatorConfigError,
    parse_allocator_config,
)
from rehearsal.standins import host

POOL_FILE = "/run/nitro_enclaves/rehearsal-pool.json"
DEVICE = "/dev/nitro_enclaves"
SMALLEST_HUGEPAGE_MIB = 2
# The allocator's ERR_INSUFFICIENT_MEMORY message (bootstrap/nitro-enclaves-allocator, `fail`).
INSUFFICIENT_MEMORY = (
    "Failed to configure entire amount of requested memory. This indicates insufficient system resources."
)


class AllocatorFailure(Exception):
    """What the allocator prints after `Error: `."""


def cpu_pool_by_count(count_text: str, vcpus: int, threads_per_core: int) -> list[int]:
    """Whole cores, CPU 0's core excluded; CPU c's siblings are c + k * (vcpus / threads) as on EC2."""
    if not count_text.isdigit():
        raise AllocatorFailure(f"The CPU count value ({count_text}) is invalid.")
    count = int(count_text)
    if count <= 0:
        raise AllocatorFailure("Provided CPU count is not higher than 0.")
    if count > vcpus:
        raise AllocatorFailure(f"Provided CPU count is higher than available CPUs - {vcpus}.")
    if count % threads_per_core:
        raise AllocatorFailure(f"The CPU count is not multiple of {threads_per_core} (threads per core).")
    cores = vcpus // threads_per_core
    pool: list[int] = []
    for core in range(1, cores):  # core 0 holds CPU 0: it stays with the parent
        if len(pool) < count:
            pool += [core + thread * cores for thread in range(threads_per_core)]
    if len(pool) != count:
        raise AllocatorFailure(
            "Failed to find suitable CPUs for the Nitro Enclaves CPU pool after checking all NUMA nodes."
        )
    return sorted(pool)


def cpu_pool_by_list(pool_text: str, vcpus: int, threads_per_core: int) -> list[int]:
    """`2,3,6-9`: the driver refuses CPU 0's core, unknown CPUs and partial cores (ne_misc_dev.c)."""
    cpus: set[int] = set()
    try:
        for group in pool_text.split(","):
            first, _, last = group.strip().partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError as error:
        raise AllocatorFailure("Failed to configure the CPU pool.") from error
    cores = vcpus // threads_per_core
    siblings = {cpu: {cpu % cores + t * cores for t in range(threads_per_core)} for cpu in cpus}
    if any(cpu >= vcpus or cpu % cores == 0 or not siblings[cpu] <= cpus for cpu in cpus):
        raise AllocatorFailure("Failed to configure the CPU pool.")
    return sorted(cpus)


def reserved_memory(memory_text: str, reservable_mib: int) -> int:
    if not memory_text.isdigit():
        raise AllocatorFailure(f"The needed memory amount ({memory_text}) is invalid.")
    wanted = -(-int(memory_text) // SMALLEST_HUGEPAGE_MIB) * SMALLEST_HUGEPAGE_MIB
    if wanted > reservable_mib:
        raise AllocatorFailure(INSUFFICIENT_MEMORY)
    return wanted


def allocate(text: str, machine: dict[str, int]) -> tuple[int, list[int], str]:
    """(memory MiB, CPU ids, the CPU part of the success line) or AllocatorFailure."""
    try:
        config = parse_allocator_config(text, path=DEFAULT_PATH)
    except AllocatorConfigError as error:
        raise AllocatorFailure(str(error)) from error
    if not host.path(DEVICE).exists():
        raise AllocatorFailure(
            "The CPU pool file is missing. Please make sure the Nitro Enclaves driver is inserted."
        )
    vcpus, threads = machine["instance_vcpus"], machine["threads_per_core"]
    if config.cpu_count is not None:
        cpus, cpu_msg = cpu_pool_by_count(config.cpu_count, vcpus, threads), f"{config.cpu_count} CPUs"
    else:
        pool_text = config.cpu_pool or ""
        cpus, cpu_msg = cpu_pool_by_list(pool_text, vcpus, threads), f"CPU pool: {pool_text}"
    reservable = machine["instance_memory_mib"] - machine["os_reserved_mib"]
    return reserved_memory(config.memory_mib, reservable), cpus, cpu_msg


def main() -> int:
    pool_file = host.path(POOL_FILE)
    pool_file.unlink(missing_ok=True)  # a failed run leaves no pool, as a failed allocator leaves none
    machine = host.settings()["machine"]
    try:
        text = host.path(DEFAULT_PATH).read_text(encoding="utf-8")
        memory_mib, cpus, cpu_msg = allocate(text, machine)
    except OSError as error:
        print(f"Error: cannot read {DEFAULT_PATH}: {error.strerror}", flush=True)
        return 1
    except AllocatorFailure as error:
        print(f"Error: {error}", flush=True)
        return 1
    host.write_json(pool_file, {"memory_mib": memory_mib, "cpu_ids": cpus})
    if cpu_msg.endswith(" CPUs"):
        print(f"Auto-generated the enclave CPU pool: {','.join(map(str, cpus))}.")
    print(f"Successfully allocated Nitro Enclaves resources: {memory_mib} MiB, {cpu_msg}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pure checks of the parent host over the recorded output of its tools: device, services, hugepages,
disk and clock. Each takes text (None when it could not be collected) and returns one Finding; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from app.ops.findings import Finding, Status, ok, skip

DEMO_UNITS = (
    "nitro-enclaves-allocator.service",
    "nitro-enclaves-vsock-proxy.service",
    "nitro-enclave-demo-enclave.service",
    "nitro-enclave-demo-relay.service",
    "nitro-enclave-demo-logs.service",
)
UNIT_HINTS: Mapping[str, str] = {
    "nitro-enclaves-allocator.service": (
        "journalctl -u nitro-enclaves-allocator; check memory_mib/cpu_count in "
        "/etc/nitro_enclaves/allocator.yaml fit the instance, then systemctl restart nitro-enclaves-allocator"
    ),
    "nitro-enclaves-vsock-proxy.service": (
        "KMS calls from the enclave hang without it (no CloudTrail event): "
        "journalctl -u nitro-enclaves-vsock-proxy; systemctl restart nitro-enclaves-vsock-proxy"
    ),
    "nitro-enclave-demo-enclave.service": (
        "journalctl -u nitro-enclave-demo-enclave (nitro-cli errors carry an E-code); "
        "nitro-cli describe-enclaves"
    ),
    "nitro-enclave-demo-relay.service": "journalctl -u nitro-enclave-demo-relay; systemctl restart it",
    "nitro-enclave-demo-logs.service": "journalctl -u nitro-enclave-demo-logs; the enclave's own lines stop",
}
# enclave-run.sh exits 3 when the EIF's PCR0 is not the pinned one (RestartPreventExitStatus=3).
EXIT_WRONG_IMAGE = "3"
DISK_FAIL_KIB = 2 * 1024 * 1024
DISK_WARN_KIB = 5 * 1024 * 1024
CLOCK_WARN_S = 0.5
CLOCK_FAIL_S = 5.0

ALLOCATOR_ERRORS: Sequence[tuple[str, str, str]] = (
    (
        "Failed to configure entire amount of requested memory",
        "the allocator could not reserve the enclave's memory as hugepages",
        "lower enclave_memory_mib (cdk -c enclave_memory_mib=...) or use a larger instance; "
        "a reboot frees fragmented memory",
    ),
    (
        "Failed to set a number of huge pages",
        "the kernel refused the hugepages the allocator asked for",
        "lower enclave_memory_mib or reboot the instance (memory may be fragmented)",
    ),
    (
        "The CPU pool file is missing",
        "the nitro_enclaves driver is not loaded",
        "the instance must be launched with enclave support; dnf reinstall aws-nitro-enclaves-cli",
    ),
    (
        "Could not re-online CPUs because there is at least one enclave currently running",
        "the allocator was restarted while an enclave was running",
        "systemctl stop nitro-enclave-demo-enclave, then systemctl restart nitro-enclaves-allocator",
    ),
    (
        "Insufficient CPUs",
        "the allocator could not take the enclave's vCPUs",
        "x86 enclaves take whole cores: an even enclave_cpu_count below the instance's vCPUs",
    ),
)


def check_device(present: bool | None) -> Finding:
    name = "enclave device"
    if present is None:
        return skip(name, "not checked")
    if present:
        return ok(name, "/dev/nitro_enclaves exists")
    return Finding(
        name,
        Status.FAIL,
        "/dev/nitro_enclaves is missing: this instance was launched without Nitro Enclaves enabled, "
        "or the driver is not loaded",
        "the stack launches with enclaves enabled; on another instance set EnclaveOptions.Enabled and use a "
        "supported type (not t*, a1, mac*); otherwise dnf install aws-nitro-enclaves-cli and reboot",
    )


def parse_systemctl_show(text: str) -> dict[str, dict[str, str]]:
    """`systemctl show -p Id,ActiveState,... u1 u2`: blocks separated by blank lines, keyed by Id."""
    units: dict[str, dict[str, str]] = {}
    for block in re.split(r"\n\s*\n", text.strip()):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if "Id" in props:
            units[props["Id"]] = props
    return units


def check_services(show_text: str | None, units: Sequence[str] = DEMO_UNITS) -> list[Finding]:
    if show_text is None:
        return [skip("services", "systemctl is not available here")]
    states = parse_systemctl_show(show_text)
    return [_unit_finding(unit, states.get(unit)) for unit in units]


def _unit_finding(unit: str, props: Mapping[str, str] | None) -> Finding:
    name = f"service {unit}"
    hint = UNIT_HINTS.get(unit, f"journalctl -u {unit}")
    if props is None or props.get("LoadState") == "not-found":
        return Finding(name, Status.FAIL, "not installed", f"the bootstrap did not get this far; {hint}")
    active, sub = props.get("ActiveState", "unknown"), props.get("SubState", "unknown")
    if active == "active":
        return ok(name, f"active ({sub})")
    if unit == "nitro-enclave-demo-enclave.service" and props.get("ExecMainStatus") == EXIT_WRONG_IMAGE:
        return Finding(
            name,
            Status.FAIL,
            "refused to start: the EIF's PCR0 is not the pinned one (enclave_pcr0)",
            "build the same image as the pin, or deploy without enclave_pcr0 to pin this image",
        )
    status = Status.WARN if active in {"activating", "reloading"} else Status.FAIL
    result = props.get("Result", "unknown")
    return Finding(name, status, f"{active} ({sub}, result {result})", hint)


def check_allocator_log(journal: str | None) -> Finding:
    name = "allocator"
    if journal is None:
        return skip(name, "no allocator journal here")
    for needle, what, todo in ALLOCATOR_ERRORS:
        if needle in journal:
            return Finding(name, Status.FAIL, f"{what} (journal: {needle!r})", todo)
    return ok(name, "no allocator error in the journal since boot")


def parse_meminfo(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = re.match(r"(\w+):\s+(\d+)", line)
        if match:
            values[match[1]] = int(match[2])
    return values


def check_hugepages(meminfo: str | None, enclave_memory_mib: int | None) -> Finding:
    name = "hugepages"
    if meminfo is None or enclave_memory_mib is None:
        return skip(name, "no /proc/meminfo or no ENCLAVE_MEMORY_MIB here")
    values = parse_meminfo(meminfo)
    # Hugetlb counts every page size (the allocator may use 1 GiB pages); HugePages_* only the default size.
    reserved_kib = values.get("Hugetlb", values.get("HugePages_Total", 0) * values.get("Hugepagesize", 0))
    reserved_mib = reserved_kib // 1024
    if reserved_mib >= enclave_memory_mib:
        return ok(name, f"{reserved_mib} MiB reserved for enclaves (enclave needs {enclave_memory_mib} MiB)")
    return Finding(
        name,
        Status.FAIL,
        f"only {reserved_mib} MiB of hugepages reserved, the enclave needs {enclave_memory_mib} MiB: "
        "nitro-cli run-enclave fails with E27",
        "systemctl restart nitro-enclaves-allocator (after stopping the enclave); if it cannot reserve "
        "the memory, lower enclave_memory_mib or reboot (fragmented memory)",
    )


def check_disk(df_text: str | None) -> Finding:
    """`df -Pk /`: the EIF download, the relay's venv and the journal need free space on the root volume
    (hosts build no image since issue 9; CodeBuild does)."""
    name = "disk"
    if df_text is None:
        return skip(name, "df not available")
    rows = [line.split() for line in df_text.strip().splitlines()[1:]]
    row = next((r for r in rows if len(r) >= 6), None)
    if row is None:
        return skip(name, "df printed nothing usable")
    available_kib, mount = int(row[3]), row[5]
    free = f"{available_kib / 1024 / 1024:.1f} GiB free on {mount} ({row[4]} used)"
    if available_kib < DISK_FAIL_KIB:
        todo = (
            "journalctl --vacuum-size=200M frees journal space; the stack's root volume is 30 GiB, keep it so"
        )
        return Finding(
            name, Status.FAIL, f"{free}: the EIF download or a restart fails here (out of disk)", todo
        )
    if available_kib < DISK_WARN_KIB:
        return Finding(name, Status.WARN, free, "journalctl --vacuum-size=200M before the disk fills")
    return ok(name, free)


def check_clock(tracking: str | None) -> Finding:
    """`chronyc tracking`: SigV4 and attestation freshness both need a right clock."""
    name = "clock"
    if tracking is None:
        return skip(name, "chronyc not available")
    leap = re.search(r"^Leap status\s*:\s*(.+)$", tracking, re.MULTILINE)
    offset = re.search(r"^System time\s*:\s*([\d.]+) seconds (fast|slow)", tracking, re.MULTILINE)
    if leap and leap[1].strip() != "Normal":
        return Finding(
            name, Status.FAIL, f"chrony is not synchronised ({leap[1].strip()})", "systemctl restart chronyd"
        )
    if offset is None:
        return skip(name, "chronyc tracking printed no offset")
    seconds = float(offset[1])
    what = f"{seconds:.3f} s {offset[2]} of NTP time"
    if seconds >= CLOCK_FAIL_S:
        return Finding(name, Status.FAIL, what, "systemctl restart chronyd; AWS requests fail when skewed")
    if seconds >= CLOCK_WARN_S:
        return Finding(name, Status.WARN, what, "chrony is slewing; check chronyc sources")
    return ok(name, what)

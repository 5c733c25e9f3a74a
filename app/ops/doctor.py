"""Turns recorded observations into findings, in the order an operator would look. Pure; no I/O."""

from __future__ import annotations

from app.ops import enclave_checks, host_checks
from app.ops.collect import Observations
from app.ops.findings import Finding, Status


def diagnose(obs: Observations) -> list[Finding]:
    enclave = enclave_checks.check_enclave(obs.describe_enclaves, obs.enclave_cid)
    return [
        host_checks.check_device(obs.device_present),
        *host_checks.check_services(obs.systemctl_show),
        host_checks.check_allocator_log(obs.allocator_journal),
        host_checks.check_hugepages(obs.meminfo, obs.enclave_memory_mib),
        enclave_checks.check_eif_size(obs.eif_bytes, obs.enclave_memory_mib),
        enclave,
        *enclave_checks.check_nitro_cli_errors(obs.enclave_journal, enclave.status is not Status.FAIL),
        enclave_checks.check_pcr0(obs.describe_enclaves, obs.pinned_pcr0),
        enclave_checks.check_allowlist(obs.vsock_proxy_config, obs.region),
        enclave_checks.check_enclave_clock(obs.enclave_ping),
        host_checks.check_disk(obs.df),
        host_checks.check_clock(obs.chrony),
    ]

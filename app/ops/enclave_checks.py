"""Pure checks of the enclave side over recorded tool output: nitro-cli E-codes, describe-enclaves,
EIF size vs enclave memory, PCR0 vs the pin, the vsock-proxy allowlist, the enclave's clock (from its ping).
No I/O; one Finding each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.ops.findings import Finding, Status, ok, skip

ENCLAVE_NAME = "nitro-enclave-demo"
HELP_URL = "https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#{code}"
ZERO_PCR = "0" * 96
EIF_MEMORY_FACTOR = 4
# The enclave signs KMS requests with the NSM's time when its own clock is off (app/enclave/clock.py); that
# covers SigV4 only. TLS certificate checks still use the enclave's own clock: this far off is a fault.
CLOCK_SKEW_FAIL_S = 3600
_E_CODE = re.compile(r"\[ (E\d{2}) \] ([^\n]*)")

# What we know each nitro-cli error means for this stack, and what to do (codes: nitro-cli's
# src/common/document_errors.rs; texts are ours).
E_CODES: Mapping[str, tuple[str, str]] = {
    "E11": ("socket error talking to the enclave process", "nitro-cli describe-enclaves; restart the unit"),
    "E19": (
        "a file operation failed (the EIF missing or unreadable, or the log file)",
        "ls -l $ENCLAVE_EIF; the bootstrap downloads it from the EIF bucket (terminate the host: the group "
        "replaces it)",
    ),
    "E22": (
        "more vCPUs requested than the allocator's pool holds",
        "enclave_cpu_count must not exceed cpu_count in /etc/nitro_enclaves/allocator.yaml",
    ),
    "E26": (
        "enclave memory is below what the EIF needs (at least 4 x its size)",
        "raise enclave_memory_mib (cdk -c enclave_memory_mib=...) and redeploy",
    ),
    "E27": (
        "not enough hugepage memory reserved by the allocator for the enclave",
        "systemctl restart nitro-enclaves-allocator; if it fails, lower enclave_memory_mib or reboot",
    ),
    "E29": (
        "an ioctl to the Nitro Enclaves driver failed",
        "reboot the instance; check dmesg for nitro_enclaves",
    ),
    "E35": (
        "the EIF could not be loaded into enclave memory (hugepages not available)",
        "systemctl restart nitro-enclaves-allocator, then the enclave unit",
    ),
    "E36": (
        "the enclave did not boot (no ready signal: a bad EIF, or memory below 4 x EIF)",
        "raise enclave_memory_mib; redeploy in debug mode (-c enclave_debug=true) and read nitro-cli console",
    ),
    "E39": (
        "nitro-cli could not reach an enclave process (one died or is stuck)",
        "nitro-cli terminate-enclave --all, then systemctl restart nitro-enclave-demo-enclave",
    ),
    "E42": ("allocating the enclave memory failed", "restart the allocator; lower enclave_memory_mib"),
    "E44": (
        "cannot attach to the enclave console (only debug-mode enclaves have one)",
        "use the enclave's log channel: journalctl -u nitro-enclave-demo-logs",
    ),
    "E48": ("building the EIF failed", "hosts build nothing: the CodeBuild build's log says why"),
    "E49": (
        "building the Docker image for the EIF failed",
        "hosts build nothing: see the CodeBuild build's log",
    ),
    "E50": ("pulling the Docker image failed", "the image must be built locally first (docker images)"),
}


@dataclass(frozen=True)
class Enclave:
    name: str
    state: str
    cid: int
    memory_mib: int
    cpus: int
    debug: bool
    pcr0: str


def parse_describe(text: str) -> list[Enclave]:
    """`nitro-cli describe-enclaves`: a JSON list (empty when nothing runs)."""
    entries: Any = json.loads(text)
    if isinstance(entries, list):
        return [_enclave(e) for e in entries if isinstance(e, dict)]
    raise ValueError("describe-enclaves did not print a JSON list")


def _enclave(entry: Mapping[str, Any]) -> Enclave:
    measurements = entry.get("Measurements") or {}
    return Enclave(
        name=str(entry.get("EnclaveName", "")),
        state=str(entry.get("State", "")),
        cid=int(entry.get("EnclaveCID", 0)),
        memory_mib=int(entry.get("MemoryMiB", 0)),
        cpus=int(entry.get("NumberOfCPUs", 0)),
        debug="DEBUG_MODE" in str(entry.get("Flags", "")),
        pcr0=str(measurements.get("PCR0", "")).lower(),
    )


def ours(enclaves: list[Enclave]) -> Enclave | None:
    return next((e for e in enclaves if e.name == ENCLAVE_NAME), None)


def _running_enclave(describe_text: str) -> Enclave | Finding:
    """Our enclave from describe-enclaves, or the failing finding that says why there is none."""
    try:
        enclave = ours(parse_describe(describe_text))
    except ValueError as error:
        return Finding("enclave", Status.FAIL, f"nitro-cli describe-enclaves: {error}", "run it as root")
    if enclave is None:
        todo = "journalctl -u nitro-enclave-demo-enclave"
        return Finding("enclave", Status.FAIL, f"no enclave named {ENCLAVE_NAME} is running", todo)
    return enclave


def check_enclave(describe_text: str | None, expected_cid: int | None) -> Finding:
    name = "enclave"
    if describe_text is None:
        return skip(name, "nitro-cli not available here")
    enclave = _running_enclave(describe_text)
    if isinstance(enclave, Finding):
        return enclave
    what = f"{enclave.state}, CID {enclave.cid}, {enclave.cpus} vCPUs, {enclave.memory_mib} MiB"
    if enclave.state != "RUNNING":
        return Finding(name, Status.FAIL, what, "systemctl restart nitro-enclave-demo-enclave")
    if expected_cid is not None and enclave.cid != expected_cid:
        todo = "systemctl restart nitro-enclave-demo-enclave"
        return Finding(name, Status.FAIL, f"{what}; the relay expects CID {expected_cid}", todo)
    if enclave.debug:
        return Finding(
            name, Status.WARN, f"{what}, DEBUG MODE: attestation is all zeros", "never use real data"
        )
    return ok(name, what)


def check_nitro_cli_errors(log_text: str | None, enclave_running: bool) -> list[Finding]:
    """E-codes in the enclave unit's journal; historical (warn) if the enclave runs now, else fail."""
    if log_text is None:
        return [skip("nitro-cli errors", "no enclave journal here")]
    seen: dict[str, str] = {}
    for match in _E_CODE.finditer(log_text):
        seen[match[1]] = match[2].strip()
    status = Status.WARN if enclave_running else Status.FAIL
    findings = []
    for code, text in seen.items():
        what, todo = E_CODES.get(code, (f"nitro-cli error {code}", ""))
        detail = f"{what}. nitro-cli said: {text[:300]}"
        findings.append(
            Finding(f"nitro-cli {code}", status, detail, f"{todo} ({HELP_URL.format(code=code)})")
        )
    return findings or [ok("nitro-cli errors", "no nitro-cli error in the enclave journal since boot")]


def check_eif_size(eif_bytes: int | None, enclave_memory_mib: int | None) -> Finding:
    name = "EIF size vs enclave memory"
    if eif_bytes is None or enclave_memory_mib is None:
        return skip(name, "no EIF or no ENCLAVE_MEMORY_MIB here")
    eif_mib = eif_bytes / 1024 / 1024
    needed = int(eif_mib * EIF_MEMORY_FACTOR) + 1
    what = f"EIF {eif_mib:.0f} MiB, enclave memory {enclave_memory_mib} MiB (needs at least {needed})"
    if enclave_memory_mib < needed:
        todo = f"raise enclave_memory_mib to {needed} or more (cdk -c enclave_memory_mib=...) and redeploy"
        return Finding(name, Status.FAIL, f"{what}: boot fails (E26, or 'Failed to unpack initramfs')", todo)
    return ok(name, what)


def check_pcr0(describe_text: str | None, pinned_pcr0: str | None) -> Finding:
    """`pinned_pcr0`: the PCR0 values the key accepts, comma-separated (the build's first; during a roll,
    the previous one too)."""
    name = "PCR0 vs key policy pin"
    if describe_text is None or not pinned_pcr0:
        return skip(name, "no running enclave description or no pinned PCR0 here")
    try:
        enclave = ours(parse_describe(describe_text))
    except ValueError:
        return skip(name, "describe-enclaves output unreadable")
    if enclave is None or not enclave.pcr0:
        return skip(name, "no running enclave to compare")
    if enclave.debug:
        return Finding(
            name, Status.WARN, "debug mode: the enclave attests all-zero PCRs", "never use real data"
        )
    accepted = [value.strip().lower() for value in pinned_pcr0.split(",") if value.strip()]
    return _compare_pcr0(name, enclave.pcr0, accepted)


def _compare_pcr0(name: str, running: str, accepted: list[str]) -> Finding:
    if running == accepted[0]:
        return ok(name, f"running PCR0 {running[:16]}… equals the pin")
    if running in accepted:
        return Finding(
            name,
            Status.WARN,
            f"running PCR0 {running[:16]}… is the previous image's, still accepted beside the new "
            f"{accepted[0][:16]}…",
            "a roll replaces this host; once every host runs the new image, retire the old one with "
            "cdk deploy -c retire_previous=true",
        )
    return Finding(
        name,
        Status.FAIL,
        f"running PCR0 {running[:16]}… is not the pinned {accepted[0][:16]}…: KMS refuses every Decrypt "
        "(access_denied, cards parked on the dead-letter queue)",
        "run make deploy again: the build re-pins and the group rolls; then redrive the DLQ",
    )


def check_allowlist(config_text: str | None, region: str | None) -> Finding:
    """/etc/nitro_enclaves/vsock-proxy.yaml must allow kms.<region>.amazonaws.com:443."""
    name = "vsock-proxy allowlist"
    if config_text is None or not region:
        return skip(name, "no vsock-proxy.yaml or no AWS_REGION here")
    wanted = f"kms.{region}.amazonaws.com"
    pairs = re.findall(r"address:\s*([\w.\-]+)\s*,\s*port:\s*(\d+)", config_text)
    if (wanted, "443") in pairs:
        return ok(name, f"{wanted}:443 is allowed")
    listed = ", ".join(f"{a}:{p}" for a, p in pairs) or "nothing"
    return Finding(
        name,
        Status.FAIL,
        f"{wanted}:443 is not allowed (the file lists {listed}): KMS calls from the enclave hang, "
        "with no CloudTrail event",
        "restore /etc/nitro_enclaves/vsock-proxy.yaml from /etc/nitro-enclave-demo/vsock-proxy.yaml "
        "(region mismatch?) and systemctl restart nitro-enclaves-vsock-proxy",
    )


def check_enclave_clock(ping: Mapping[str, Any] | None) -> Finding:
    """The skew the enclave measured at its last attestation document (its ping's `clock_skew_ms`)."""
    name = "enclave clock"
    if ping is None:
        return skip(name, "the enclave did not answer a ping")
    skew_ms = ping.get("clock_skew_ms")
    if not isinstance(skew_ms, int) or isinstance(skew_ms, bool):
        return skip(name, "the enclave's ping carries no clock reading (no attestation document yet?)")
    way = "ahead of" if skew_ms >= 0 else "behind"
    what = f"{abs(skew_ms) / 1000:.3f} s {way} the NSM's signed time"
    restart = (
        "systemctl restart nitro-enclave-demo-enclave (a new enclave reads its time at boot from the "
        "hypervisor through kvm-clock, not from this instance's clock; no AWS document promises it is "
        "closer); the lasting fix is chrony inside the enclave on the PTP clock /dev/ptp0 where the instance "
        "has one (aws-nitro-enclaves-cli#500), which this image does not run"
    )
    if abs(skew_ms) >= CLOCK_SKEW_FAIL_S * 1000:
        return Finding(
            name, Status.FAIL, f"{what}: KMS requests are signed with the NSM's time, but TLS certificate "
            "checks use the enclave's own clock", restart,
        )  # fmt: skip
    if ping.get("clock_corrected") is True:
        return Finding(
            name, Status.WARN, f"{what}; corrected: KMS requests are signed with the NSM's time",
            f"nothing urgent; if it keeps growing, {restart}",
        )  # fmt: skip
    return ok(name, what)

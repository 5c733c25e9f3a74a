"""Verifies an enclave's attestation document and compares its PCRs with the value the key policy pins.

Pure: a document, a nonce, a trusted root and the pinned PCR0 in; a report out. The CLI (`python -m
app.parent attest`) fetches the document over vsock; the same logic runs locally against the software
root. A debug-mode enclave attests all-zero PCRs: reported as "attestation off", never as a match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.shared import attestation

MAX_AGE_S = 300.0
SHOWN_PCRS = (0, 1, 2)
ZERO_PCR_HEX = "0" * 96


@dataclass(frozen=True)
class AttestReport:
    verified: bool
    problem: str | None  # why verification failed, when it did
    pcrs: dict[int, str]  # index -> lowercase hex, as the enclave attested them
    pinned_pcr0: str | None
    age_s: float | None
    module_id: str | None

    @property
    def debug_mode(self) -> bool:
        return self.pcrs.get(0) == ZERO_PCR_HEX

    @property
    def pcr0_matches(self) -> bool:
        return self.verified and not self.debug_mode and self.pcrs.get(0) == self.pinned_pcr0

    @property
    def ok(self) -> bool:
        """What the command's exit code reports: verified, not debug, and matching any pin given."""
        return self.verified and not self.debug_mode and (self.pinned_pcr0 is None or self.pcr0_matches)

    @property
    def verdict(self) -> str:
        if not self.verified:
            return f"NOT VERIFIED: {self.problem}"
        if self.debug_mode:
            return (
                "ATTESTATION OFF: a debug-mode enclave attests all-zero PCRs; "
                "a production key policy refuses it"
            )
        if self.pinned_pcr0 is None:
            return "verified; no pinned PCR0 given to compare with"
        if self.pcr0_matches:
            return "MATCH: this enclave's PCR0 is the one the key policy pins, so it alone can decrypt"
        return "MISMATCH: this enclave's PCR0 is not the pinned one; KMS will refuse it (AccessDenied)"


def check(
    document: bytes,
    *,
    nonce: bytes | None,
    root_certificate_der: bytes,
    pinned_pcr0: str | None,
    at: datetime | None = None,
    max_age_s: float | None = MAX_AGE_S,
) -> AttestReport:
    pinned = pinned_pcr0.lower() if pinned_pcr0 else None
    try:
        doc = attestation.verify_document(
            document,
            root_certificate_der=root_certificate_der,
            at=at,
            max_age_s=max_age_s,
            expected_nonce=nonce,
        )
    except attestation.AttestationError as error:
        return AttestReport(
            False, f"{type(error).__name__}: {error}", _pcrs_if_parseable(document), pinned, None, None
        )
    age = ((at or datetime.now(UTC)) - doc.timestamp).total_seconds()
    pcrs = {i: doc.pcr_hex(i) for i in SHOWN_PCRS if i in doc.pcrs}
    return AttestReport(True, None, pcrs, pinned, round(age, 1), doc.module_id)


def _pcrs_if_parseable(document: bytes) -> dict[int, str]:
    try:
        doc = attestation.parse_document(document)
    except attestation.AttestationError:
        return {}
    return {i: doc.pcr_hex(i) for i in SHOWN_PCRS if i in doc.pcrs}


def render(report: AttestReport, *, root_label: str) -> str:
    lines = []
    if report.verified:
        lines.append(
            f"attestation document from {report.module_id}: signature OK, chain to {root_label} OK, "
            f"nonce OK, {report.age_s} s old"
        )
    lines.append(f"{'':5} {'enclave (attested)':96}  pinned in the key policy")
    for index, value in sorted(report.pcrs.items()):
        pinned = (report.pinned_pcr0 or "(not given)") if index == 0 else ""
        lines.append(f"PCR{index:<2} {value:96}  {pinned}")
    lines.append(report.verdict)
    return "\n".join(lines)

"""Verifies an enclave's attestation document and compares its PCR0 with the pin the key policy holds.

Pure: a document, a nonce, a trusted root and a `Pin` in; a report out. The CLI (`python -m app.parent
attest`) fetches the document over vsock and reads the pin from the key policy itself (kms:GetKeyPolicy),
not from a copy. A debug-mode enclave attests all-zero PCRs: reported as "attestation off", never a match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.keypolicy.pins import decrypt_grants
from app.shared import attestation

MAX_AGE_S = 300.0
SHOWN_PCRS = (0, 1, 2)
ZERO_PCR_HEX = "0" * 96


@dataclass(frozen=True)
class Pin:
    """The PCR0 values an enclave is compared with, and where they come from."""

    source: str  # e.g. 'the key policy (statement "AttestedEnclaveDecrypts")'
    values: tuple[str, ...]  # lowercase hex
    unpinned: tuple[str, ...] = ()  # statements that allow kms:Decrypt with no ImageSha384 condition

    @classmethod
    def given(cls, value: str) -> Pin:
        return cls("--pinned-pcr0", (value.strip().lower(),))

    @classmethod
    def from_key_policy(cls, policy: Mapping[str, Any]) -> Pin:
        grants = decrypt_grants(policy)
        pinned = [g for g in grants if g.image_sha384]
        names = ", ".join(f'"{g.statement}"' for g in pinned) or "none allows kms:Decrypt with a pin"
        values = tuple(dict.fromkeys(v for g in pinned for v in g.image_sha384))
        return cls(
            f"the key policy (statement {names})",
            values,
            tuple(g.statement for g in grants if not g.image_sha384),
        )


@dataclass(frozen=True)
class AttestReport:
    verified: bool
    problem: str | None  # why verification failed, when it did
    pcrs: dict[int, str]  # index -> lowercase hex, as the enclave attested them
    pin: Pin | None
    age_s: float | None
    module_id: str | None

    @property
    def debug_mode(self) -> bool:
        return self.pcrs.get(0) == ZERO_PCR_HEX

    @property
    def pcr0_matches(self) -> bool:
        return (
            self.verified
            and not self.debug_mode
            and self.pin is not None
            and self.pcrs.get(0) in self.pin.values
        )

    @property
    def ok(self) -> bool:
        """What the command's exit code reports: verified, not debug, matching the pin, no unpinned grant."""
        if not self.verified or self.debug_mode:
            return False
        return self.pin is None or (self.pcr0_matches and not self.pin.unpinned)

    @property
    def verdict(self) -> str:
        if not self.verified:
            return f"NOT VERIFIED: {self.problem}"
        if self.pin is not None and self.pin.unpinned:
            names = ", ".join(f'"{s}"' for s in self.pin.unpinned)
            return (
                f"KEY POLICY NOT PINNED: statement {names} allows kms:Decrypt without a "
                "kms:RecipientAttestation:ImageSha384 condition: its principals decrypt without any enclave"
            )
        if self.debug_mode:
            accepted = self.pin is not None and ZERO_PCR_HEX in self.pin.values
            return "ATTESTATION OFF: a debug-mode enclave attests all-zero PCRs; " + (
                "this key policy ACCEPTS them (enclave_debug=true)"
                if accepted
                else "this key policy refuses it"
            )
        if self.pin is None:
            return "verified; no pinned PCR0 given to compare with"
        if self.pcr0_matches:
            return f"MATCH: this enclave's PCR0 is the one {self.pin.source} allows to decrypt"
        return (
            f"MISMATCH: this enclave's PCR0 is not what {self.pin.source} allows; "
            "KMS will refuse it (AccessDenied)"
        )


def check(
    document: bytes,
    *,
    nonce: bytes | None,
    root_certificate_der: bytes,
    pin: Pin | None,
    at: datetime | None = None,
    max_age_s: float | None = MAX_AGE_S,
) -> AttestReport:
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
            False, f"{type(error).__name__}: {error}", _pcrs_if_parseable(document), pin, None, None
        )
    age = ((at or datetime.now(UTC)) - doc.timestamp).total_seconds()
    pcrs = {i: doc.pcr_hex(i) for i in SHOWN_PCRS if i in doc.pcrs}
    return AttestReport(True, None, pcrs, pin, round(age, 1), doc.module_id)


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
    if report.pin is not None:
        lines.append(f"pin read from {report.pin.source}")
    values = report.pin.values if report.pin is not None else ()
    lines.append(f"{'':5} {'enclave (attested)':96}  accepted by the key policy")
    for index, value in sorted(report.pcrs.items()):
        pinned = (values[0] if values else "(not given)") if index == 0 else ""
        lines.append(f"PCR{index:<2} {value:96}  {pinned}")
        if index == 0:
            lines.extend(f"{'':5} {'':96}  {other}" for other in values[1:])
    lines.append(report.verdict)
    return "\n".join(lines)

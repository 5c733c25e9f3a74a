"""What a reader of results trusts: the root (AWS Nitro, or a given PEM) and the pinned PCR0 (read from the
key policy itself, as `python -m app.parent attest` does, or given). Builds the ResultVerifier from them.

`python -m app.producer verify` reads result bodies, one JSON per line, and prints one verdict per line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.keypolicy.pins import decrypt_grants, read_key_policy
from app.producer.report import printable
from app.shared import attestation, cards, limits
from app.shared.queue_messages import ResultMessage
from app.shared.result_proof import UNVERIFIED, ResultVerifier, Verdict


class TrustError(RuntimeError):
    """The root or the pin could not be read: nothing can be verified (the message says which)."""


@dataclass(frozen=True)
class Trust:
    root_der: bytes
    root_label: str
    pinned_pcr0: tuple[str, ...]
    pin_source: str
    key_arn: str | None = None  # the key KMS must have used (None: unknown, so nothing verifies)
    fixed_context: Mapping[str, str] | None = None  # the deployment's fixed pairs (None: not compared)

    def verifier(self) -> ResultVerifier:
        return ResultVerifier(
            root_certificate_der=self.root_der, pinned_pcr0=self.pinned_pcr0,
            pinned_key_arn=self.key_arn, fixed_context=self.fixed_context,
        )  # fmt: skip

    def describe(self) -> str:
        key = f"KMS key {self.key_arn}" if self.key_arn else "NO KMS key (give --key-id: nothing can verify)"
        return (
            f"results verified against {self.root_label}, the PCR0 pinned by {self.pin_source} and the {key}"
        )


def load_root(root_pem: Path | None, warn: IO[str] | None = None) -> tuple[bytes, str]:
    """The AWS Nitro root (pinned fingerprint), or the PEM given (the local PKI's, in local mode); any
    other root than AWS's is named in a loud line on `warn` (stderr by default): a root set by
    ATTESTATION_ROOT_PEM decides what verifies, and must never replace AWS's unnoticed."""
    aws_root = attestation.load_aws_nitro_root()
    if root_pem is None:
        return aws_root, "the AWS Nitro root"
    try:
        pem = x509.load_pem_x509_certificate(root_pem.read_bytes())
    except (OSError, ValueError) as error:
        raise TrustError(f"cannot read the root certificate {root_pem}: {error}") from None
    der = pem.public_bytes(serialization.Encoding.DER)
    if der != aws_root:
        print(
            f"WARNING: results are verified against the root {root_pem} "
            f"({pem.subject.rfc4514_string()}), NOT the AWS Nitro root: only right in local mode "
            "and the rehearsal (unset ATTESTATION_ROOT_PEM and --root-pem otherwise)",
            file=warn or sys.stderr, flush=True,
        )  # fmt: skip
    return der, str(root_pem)


def load_trust(
    *, root_pem: Path | None, pinned_pcr0: str | None, kms: Any, key_id: str,
    fixed_context: Mapping[str, str] | None = None,
) -> Trust:  # fmt: skip
    """The root, the pin (the one given, else every PCR0 the key policy lets decrypt), the key's ARN
    (`key_id`, the key the pin is read from: KMS must have used it) and the fixed context, when known."""
    root, label = load_root(root_pem)
    key_arn = key_id or None
    if pinned_pcr0:
        return Trust(root, label, (pinned_pcr0.strip().lower(),), "--pinned-pcr0", key_arn, fixed_context)
    try:
        grants = decrypt_grants(read_key_policy(kms, key_id))
    except Exception as error:  # KMS, JSON and grammar errors alike: say what could not be read
        raise TrustError(
            f"cannot read the pin from the key policy of {key_id}: {type(error).__name__}: {error}"
        ) from error
    unpinned = [grant.statement for grant in grants if not grant.image_sha384]
    if unpinned:  # as `python -m app.parent attest` fails on them
        names = ", ".join(f'"{name}"' for name in unpinned)
        raise TrustError(
            f"the key policy of {key_id} allows kms:Decrypt with no ImageSha384 condition in {names}: "
            "those principals decrypt without any enclave, so the pin does not guard the cards"
        )
    values = tuple(dict.fromkeys(value for grant in grants for value in grant.image_sha384))
    if not values:
        raise TrustError(f"the key policy of {key_id} pins no PCR0 for kms:Decrypt")
    return Trust(root, label, values, f"the key policy of {key_id}", key_arn, fixed_context)


def verdict_of(verifier: ResultVerifier, result: ResultMessage) -> Verdict:
    return verifier.verify(result.signed_fields(), result.proof)


def verify_lines(verifier: ResultVerifier, lines: Iterable[str]) -> Iterator[tuple[bool, str]]:
    """(verified, line to print) for each non-blank input line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = ResultMessage.from_json(line.strip())
            verdict = verdict_of(verifier, result)
        except Exception as error:
            reason = cards.scrub_card_numbers(limits.clip(f"{type(error).__name__}: {error}", 200))
            yield False, printable(f"line {number}: {UNVERIFIED} (not a result: {reason})")
            continue
        shown = f"card_id={result.card_id} message_id={result.message_id} status={result.status}"
        yield (
            verdict.verified,
            printable(cards.scrub_card_numbers(f"line {number}: {verdict.describe()}  {shown}")),
        )

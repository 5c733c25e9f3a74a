"""Signed results: the bytes the enclave signs for each answer, and how a reader of a result checks them.

Signed bytes, version 1: `SIGNED_PREFIX`, then card_id, message_id, status, last4, error_code in this order,
each as one byte 0 (absent) or 1 (present) followed, when present, by its UTF-8 length (2 bytes, big-endian)
and its UTF-8 bytes. The key: an Ed25519 key the enclave generated, whose 32-byte public key follows
`RESULT_KEY_TAG` in the `user_data` of the attestation document that also carries its KMS Recipient key.
A proof is {"v": 1, "alg": "Ed25519", "signature": b64, "document": b64}. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.shared import attestation

PROOF_VERSION = 1
PROOF_ALGORITHM = "Ed25519"
SIGNED_PREFIX = b"nitro-enclave-demo/result/v1\x00"
RESULT_KEY_TAG = b"nitro-enclave-demo/result-key/ed25519/v1\x00"
ED25519_PUBLIC_KEY_BYTES = 32
MAX_FIELD_BYTES = 0xFFFF
# A verifier accepts a document up to 14 days old (SQS's longest retention: no result still on a queue is
# older), its chain checked at the document's own time, because the key it binds signs for
# KEY_LIFETIME_S after that time, and the Nitro leaf certificate expires within hours.
MAX_DOCUMENT_AGE_S = 14 * 24 * 3600.0
VERIFIED = "verified"
UNVERIFIED = "UNVERIFIED"
_CACHE_ENTRIES = 256  # verified documents: one per enclave worker and key lifetime


@dataclass(frozen=True)
class SignedFields:
    """What a signature covers: who the answer is for, and what it says."""

    card_id: str | None
    message_id: str | None
    status: str
    last4: str | None
    error_code: str | None

    def encode(self) -> bytes:
        parts = [SIGNED_PREFIX]
        for value in (self.card_id, self.message_id, self.status, self.last4, self.error_code):
            if value is None:
                parts.append(b"\x00")
                continue
            if not isinstance(value, str):  # a forged result may put anything in a field
                raise TypeError(f"a signed field is {type(value).__name__}, not text")
            data = value.encode("utf-8")
            if len(data) > MAX_FIELD_BYTES:
                raise ValueError(f"a signed field is {len(data)} bytes, at most {MAX_FIELD_BYTES}")
            parts.append(b"\x01" + struct.pack(">H", len(data)) + data)
        return b"".join(parts)


def key_user_data(public_key: Ed25519PublicKey) -> bytes:
    """The `user_data` that binds this result key into an attestation document."""
    return RESULT_KEY_TAG + public_key.public_bytes_raw()


def sign(private_key: Ed25519PrivateKey, document_b64: str, fields: SignedFields) -> dict[str, Any]:
    """The proof the enclave attaches to one answer (`document_b64`: the document, encoded once per key)."""
    signature = base64.b64encode(private_key.sign(fields.encode())).decode("ascii")
    return {"v": PROOF_VERSION, "alg": PROOF_ALGORITHM, "signature": signature, "document": document_b64}


@dataclass(frozen=True)
class Verdict:
    verified: bool
    reason: str = ""  # why not, when not

    @property
    def label(self) -> str:
        return VERIFIED if self.verified else UNVERIFIED

    def describe(self) -> str:
        return self.label if self.verified else f"{UNVERIFIED} ({self.reason})"


class ProofRefused(Exception):
    """The proof does not show that the pinned enclave image gave this answer (the message says why)."""


@dataclass(frozen=True)
class _Attested:
    pcr0: str
    key: Ed25519PublicKey
    timestamp: datetime


class ResultVerifier:
    """Checks proofs against a trusted root and the pinned PCR0 values: the document's chain (at the
    document's own time), COSE signature, PCR0 (never all zeros: a debug enclave's memory is readable),
    age, the result key in its user_data, and the signature over the result's fields."""

    def __init__(
        self,
        *,
        root_certificate_der: bytes,
        pinned_pcr0: Collection[str],
        max_age_s: float = MAX_DOCUMENT_AGE_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._root = root_certificate_der
        self._pins = frozenset(value.lower() for value in pinned_pcr0)
        self._max_age_s = max_age_s
        self._clock = clock
        self._documents: dict[bytes, _Attested | str] = {}

    def verify(self, fields: SignedFields, proof: Any) -> Verdict:
        try:
            self._check(fields, proof)
        except ProofRefused as error:
            return Verdict(False, str(error))
        return Verdict(True)

    def _check(self, fields: SignedFields, proof: Any) -> None:
        if proof is None:
            raise ProofRefused("no proof: the enclave did not sign this result")
        if (
            not isinstance(proof, Mapping)
            or proof.get("v") != PROOF_VERSION
            or isinstance(proof.get("v"), bool)
        ):
            raise ProofRefused(f"proof is not a version {PROOF_VERSION} object")
        if proof.get("alg") != PROOF_ALGORITHM:
            raise ProofRefused(f"proof algorithm is not {PROOF_ALGORITHM}")
        signature = _unb64(proof.get("signature"), "signature")
        attested = self._attested(_unb64(proof.get("document"), "document"))
        if attested.pcr0 not in self._pins:
            raise ProofRefused(
                f"signed by an enclave with PCR0 {attested.pcr0[:16]}..., not the pinned image"
            )
        age_s = (self._clock() - attested.timestamp).total_seconds()
        if age_s > self._max_age_s:
            raise ProofRefused(
                f"attestation document is {age_s:.0f} s old, more than {self._max_age_s:.0f} s"
            )
        if age_s < -attestation.CLOCK_SKEW_S:
            raise ProofRefused(f"attestation document is dated {-age_s:.0f} s in the future")
        try:
            attested.key.verify(signature, fields.encode())
        except (InvalidSignature, ValueError, TypeError) as error:
            raise ProofRefused("signature does not match the result's fields") from error

    def _attested(self, document: bytes) -> _Attested:
        """The document's PCR0, result key and time, verified once per document (then from the cache)."""
        digest = hashlib.sha256(document).digest()
        cached = self._documents.get(digest)
        if cached is None:
            cached = self._documents[digest] = _verify_document(document, self._root)
            if len(self._documents) > _CACHE_ENTRIES:
                self._documents.pop(next(iter(self._documents)))
        if isinstance(cached, str):
            raise ProofRefused(cached)
        return cached


def _verify_document(document: bytes, root: bytes) -> _Attested | str:
    """A verified document's facts, or the reason it is refused (cached either way)."""
    try:
        claimed = attestation.parse_document(document)
        verified = attestation.verify_document(document, root_certificate_der=root, at=claimed.timestamp)
    except attestation.AttestationError as error:
        return f"attestation document refused: {type(error).__name__}: {error}"
    if verified.debug_mode:
        return "attestation off: a debug-mode enclave (all-zero PCR0) signed this result"
    user_data = verified.user_data or b""
    if (
        not user_data.startswith(RESULT_KEY_TAG)
        or len(user_data) != len(RESULT_KEY_TAG) + ED25519_PUBLIC_KEY_BYTES
    ):
        return "attestation document binds no result key (user_data)"
    key = Ed25519PublicKey.from_public_bytes(user_data[len(RESULT_KEY_TAG) :])
    return _Attested(verified.pcr_hex(0), key, verified.timestamp)


def _unb64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ProofRefused(f"proof {name} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as error:
        raise ProofRefused(f"proof {name} is not valid base64") from error

"""Signed results: the bytes the enclave signs for each answer, and how a reader of a result checks them.

Signed bytes, version 2: `SIGNED_PREFIX`, then card_id, message_id, status, last4, error_code, kms_key_arn,
ciphertext_sha256, context_sha256 in this order, each as one byte 0 (absent) or 1 (present) followed, when
present, by its UTF-8 length (2 bytes, big-endian) and its UTF-8 bytes. `kms_key_arn` is the KeyId of KMS's
Decrypt RESPONSE (the key KMS used, over TLS to KMS); absent when KMS never accepted the ciphertext (a refusal
only the enclave vouches for). The hashes are hex SHA-256 of the ciphertext the request named and of its
canonical encryption context (`canonical_context`). The key: an Ed25519 key the enclave generated, whose
32-byte public key follows `RESULT_KEY_TAG` in the `user_data` of the attestation document that also carries
its KMS Recipient key. A proof is {"v": 2, "alg": "Ed25519", "signature": b64, "document": b64,
"kms_key_arn": str|null, "ciphertext_sha256": hex, "context_sha256": hex}. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import struct
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.shared import attestation

PROOF_VERSION = 2
PROOF_ALGORITHM = "Ed25519"
SIGNED_PREFIX = b"nitro-enclave-demo/result/v2\x00"
RESULT_KEY_TAG = b"nitro-enclave-demo/result-key/ed25519/v1\x00"
ED25519_PUBLIC_KEY_BYTES = 32
MAX_FIELD_BYTES = 0xFFFF
# A verifier accepts a document up to 14 days old (SQS's longest retention: no result still on a queue is
# older), its chain checked at the document's own time, because the key it binds signs for
# KEY_LIFETIME_S after that time, and the Nitro leaf certificate expires within hours.
MAX_DOCUMENT_AGE_S = 14 * 24 * 3600.0
VERIFIED = "verified"
UNVERIFIED = "UNVERIFIED"
_CACHE_ENTRIES = 256  # verified documents: one per enclave worker and key lifetime, least recently used out
_FAILURE_CACHE_ENTRIES = 64  # refused documents, apart: a flood of forgeries cannot push verified ones out


@dataclass(frozen=True)
class SignedFields:
    """What a signature covers: who the answer is for, and what it says."""

    card_id: str | None
    message_id: str | None
    status: str
    last4: str | None
    error_code: str | None
    # What KMS answered for (filled by the enclave; a reader takes them from the proof): the key KMS used
    # (None: KMS never accepted the ciphertext), and which ciphertext and context the request named.
    kms_key_arn: str | None = None
    ciphertext_sha256: str | None = None
    context_sha256: str | None = None

    def encode(self) -> bytes:
        parts = [SIGNED_PREFIX]
        for value in (
            self.card_id, self.message_id, self.status, self.last4, self.error_code,
            self.kms_key_arn, self.ciphertext_sha256, self.context_sha256,
        ):  # fmt: skip
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


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_context(context: Mapping[str, str]) -> bytes:
    """The encryption context as signed: JSON, keys sorted, no spaces, ASCII escapes."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def context_sha256(context: Mapping[str, str]) -> str:
    return sha256_hex(canonical_context(context))


def key_user_data(public_key: Ed25519PublicKey) -> bytes:
    """The `user_data` that binds this result key into an attestation document."""
    return RESULT_KEY_TAG + public_key.public_bytes_raw()


def sign(private_key: Ed25519PrivateKey, document_b64: str, fields: SignedFields) -> dict[str, Any]:
    """The proof the enclave attaches to one answer (`document_b64`: the document, encoded once per key)."""
    signature = base64.b64encode(private_key.sign(fields.encode())).decode("ascii")
    return {
        "v": PROOF_VERSION, "alg": PROOF_ALGORITHM, "signature": signature, "document": document_b64,
        "kms_key_arn": fields.kms_key_arn, "ciphertext_sha256": fields.ciphertext_sha256,
        "context_sha256": fields.context_sha256,
    }  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    verified: bool
    reason: str = ""  # why not, when not; when verified, what could not be checked (if anything)

    @property
    def label(self) -> str:
        return VERIFIED if self.verified else UNVERIFIED

    def describe(self) -> str:
        if self.verified:
            return f"{VERIFIED} ({self.reason})" if self.reason else VERIFIED
        return f"{UNVERIFIED} ({self.reason})"


NOT_AUTHENTICATED_BY_KMS = "signed refusal, not authenticated by KMS: KMS never accepted this ciphertext"


class ProofRefused(Exception):
    """The proof does not show that the pinned enclave image gave this answer (the message says why)."""


@dataclass(frozen=True)
class _Attested:
    pcr0: str
    key: Ed25519PublicKey
    timestamp: datetime


class ResultVerifier:
    """Checks proofs against a trusted root, the pinned PCR0 values and the pinned KMS key: the document's
    chain (at the document's own time), COSE signature, PCR0 (never all zeros: a debug enclave's memory is
    readable), age, the result key in its user_data, the signature over the result's fields, that KMS
    decrypted under the pinned key (`pinned_key_arn`; a refusal KMS never saw is not verified), that the
    context was this deployment's (`fixed_context` plus the card id) and, when the reader knows it, that
    the ciphertext was the one it sent. What could not be compared is named in the verdict's reason."""

    def __init__(
        self,
        *,
        root_certificate_der: bytes,
        pinned_pcr0: Collection[str],
        pinned_key_arn: str | None,
        fixed_context: Mapping[str, str] | None,
        max_age_s: float = MAX_DOCUMENT_AGE_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._root = root_certificate_der
        self._pins = frozenset(value.lower() for value in pinned_pcr0)
        self._key_arn = pinned_key_arn
        self._fixed_context = None if fixed_context is None else dict(fixed_context)
        self._max_age_s = max_age_s
        self._clock = clock
        self._documents: OrderedDict[bytes, _Attested] = OrderedDict()
        self._refused: OrderedDict[bytes, str] = OrderedDict()

    def verify(self, fields: SignedFields, proof: Any, *, ciphertext_sha256: str | None = None) -> Verdict:
        """`fields`: the answer as the result states it; `ciphertext_sha256`: of the ciphertext the reader
        sent for this card, when it knows it."""
        try:
            signed = self._check(fields, proof)
            return Verdict(True, self._check_binding(signed, ciphertext_sha256))
        except ProofRefused as error:
            return Verdict(False, str(error))

    def _check_binding(self, signed: SignedFields, ciphertext_sha256: str | None) -> str:
        """The deployment and message checks; the caveat (what was not compared), or ProofRefused."""
        if signed.kms_key_arn is None:
            raise ProofRefused(NOT_AUTHENTICATED_BY_KMS)
        if self._key_arn is None:
            raise ProofRefused("no pinned KMS key ARN to compare the key KMS used with (give the key's ARN)")
        if signed.kms_key_arn != self._key_arn:
            raise ProofRefused(
                f"KMS decrypted under {signed.kms_key_arn[:120]}, not the pinned key {self._key_arn}"
            )
        caveats = []
        if self._fixed_context is None:
            caveats.append("encryption context not compared: no fixed context given")
        elif signed.card_id is None or signed.context_sha256 != context_sha256(
            {**self._fixed_context, "card_id": signed.card_id}
        ):
            raise ProofRefused("the encryption context is not this deployment's context for this card id")
        if ciphertext_sha256 is None:
            caveats.append("ciphertext not compared: no record of what was sent")
        elif signed.ciphertext_sha256 != ciphertext_sha256:
            raise ProofRefused("the signed ciphertext hash is not the ciphertext sent for this card")
        return "; ".join(caveats)

    def _check(self, fields: SignedFields, proof: Any) -> SignedFields:
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
        key_arn, ciphertext_hash, context_hash = (
            proof.get(name) for name in ("kms_key_arn", "ciphertext_sha256", "context_sha256")
        )
        if not all(
            value is None or isinstance(value, str) for value in (key_arn, ciphertext_hash, context_hash)
        ):
            raise ProofRefused("proof kms_key_arn / ciphertext_sha256 / context_sha256 are not text or null")
        signed = dataclasses.replace(
            fields, kms_key_arn=key_arn, ciphertext_sha256=ciphertext_hash, context_sha256=context_hash
        )
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
            attested.key.verify(signature, signed.encode())
        except (InvalidSignature, ValueError, TypeError) as error:
            raise ProofRefused("signature does not match the result's fields") from error
        return signed

    def _attested(self, document: bytes) -> _Attested:
        """The document's PCR0, result key and time, verified once per document (then from the cache)."""
        digest = hashlib.sha256(document).digest()
        attested = self._documents.get(digest)
        if attested is not None:
            self._documents.move_to_end(digest)
            return attested
        reason = self._refused.get(digest)
        if reason is None:
            checked = _verify_document(document, self._root)
            if isinstance(checked, _Attested):
                self._documents[digest] = checked
                if len(self._documents) > _CACHE_ENTRIES:
                    self._documents.popitem(last=False)
                return checked
            reason = self._refused[digest] = checked
            if len(self._refused) > _FAILURE_CACHE_ENTRIES:
                self._refused.popitem(last=False)
        raise ProofRefused(reason)


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

"""What real KMS does with Decrypt's `Recipient` (moto ignores it): validate it and verify the attestation
document, give the key policy its `kms:RecipientAttestation:*` condition keys, and wrap the plaintext for
the enclave's public key. Local mode only.

Whether the attested image may decrypt is not decided here: the key policy decides it
(`app.local.kms_enforcement` evaluates the stack's own statements with the context built here).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.local.cms_wrap import wrap_for_recipient
from app.shared.attestation import AttestationDocument, AttestationError, verify_document

ACCESS_DENIED = "AccessDeniedException"
VALIDATION = "ValidationException"
KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
RECIPIENT_RSA_KEY_BITS = 2048
RECIPIENT_KEY_PREFIX = "kms:RecipientAttestation:"
IMAGE_SHA384_KEY = f"{RECIPIENT_KEY_PREFIX}ImageSha384"


class RecipientRefused(Exception):
    """KMS would refuse this Decrypt; ``code`` is the KMS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RecipientVerifier:
    """What KMS trusts in an attestation document: the root certificate, and how old it may be."""

    root_certificate_der: bytes
    max_age_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {self.max_age_s}")


@dataclass(frozen=True)
class VerifiedRecipient:
    public_key_der: bytes
    document: AttestationDocument

    def context(self) -> dict[str, str]:
        """The condition keys KMS derives from the verified document: ImageSha384 (= PCR0) and PCR<n>."""
        keys = {f"{RECIPIENT_KEY_PREFIX}PCR{i}": self.document.pcr_hex(i) for i in sorted(self.document.pcrs)}
        if 0 in self.document.pcrs:
            keys[IMAGE_SHA384_KEY] = self.document.pcr_hex(0)
        return keys

    def wrap(self, plaintext: bytes) -> bytes:
        """`CiphertextForRecipient`: the plaintext in CMS EnvelopedData for the document's public key."""
        return wrap_for_recipient(plaintext, self.public_key_der)


def verify_recipient(
    recipient: Any, verifier: RecipientVerifier, *, now: datetime | None = None
) -> VerifiedRecipient:
    """Apply KMS's Recipient validation; raise RecipientRefused(ValidationException) on a bad one."""
    if not isinstance(recipient, Mapping):
        raise RecipientRefused(VALIDATION, "Recipient must be a structure")
    algorithm = recipient.get("KeyEncryptionAlgorithm")
    if algorithm != KEY_ENCRYPTION_ALGORITHM:
        raise RecipientRefused(
            VALIDATION,
            f"KeyEncryptionAlgorithm {algorithm!r} is not supported; use {KEY_ENCRYPTION_ALGORITHM}",
        )
    document = _verified_document(recipient.get("AttestationDocument"), verifier, now)
    return VerifiedRecipient(_recipient_public_key(document), document)


def _verified_document(raw: Any, verifier: RecipientVerifier, now: datetime | None) -> AttestationDocument:
    if isinstance(raw, str):
        try:
            raw = base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            raise RecipientRefused(VALIDATION, "AttestationDocument is not valid base64") from exc
    if not isinstance(raw, bytes) or not raw:
        raise RecipientRefused(VALIDATION, "Recipient has no AttestationDocument")
    try:
        return verify_document(
            raw, root_certificate_der=verifier.root_certificate_der, at=now, max_age_s=verifier.max_age_s
        )
    except AttestationError as exc:
        raise RecipientRefused(VALIDATION, f"the attestation document is not valid: {exc}") from exc


def _recipient_public_key(document: AttestationDocument) -> bytes:
    if document.public_key is None:
        raise RecipientRefused(VALIDATION, "the attestation document has no public_key")
    try:
        key = serialization.load_der_public_key(document.public_key)
    except ValueError as exc:
        raise RecipientRefused(VALIDATION, "public_key is not a DER SubjectPublicKeyInfo") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size != RECIPIENT_RSA_KEY_BITS:
        raise RecipientRefused(VALIDATION, f"public_key must be RSA-{RECIPIENT_RSA_KEY_BITS}")
    return document.public_key

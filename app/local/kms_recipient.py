"""What real KMS does with Decrypt's `Recipient` (moto ignores it), enforcing our key policy. Local mode only.

Decrypt succeeds only for a fresh, verified attestation whose PCR0 is pinned; the answer never has Plaintext.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
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
PCR0_HEX_LENGTH = 96
_HEX_DIGITS = frozenset("0123456789abcdef")
_installed: dict[str, Callable[..., str]] = {}


class RecipientRefused(Exception):
    """KMS would refuse this Decrypt; ``code`` is the KMS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RecipientPolicy:
    """The key policy's Recipient conditions: trusted root and kms:RecipientAttestation:ImageSha384 values."""

    root_certificate_der: bytes
    allowed_image_sha384: frozenset[str]
    max_age_s: float = 300.0

    def __post_init__(self) -> None:
        for pin in self.allowed_image_sha384:
            if len(pin) != PCR0_HEX_LENGTH or not set(pin) <= _HEX_DIGITS:
                raise ValueError(f"allowed ImageSha384 {pin!r} is not {PCR0_HEX_LENGTH} lowercase hex digits")
        if self.max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {self.max_age_s}")


def ciphertext_for_recipient(
    plaintext: bytes, recipient: Mapping[str, Any], policy: RecipientPolicy, *, now: datetime | None = None
) -> bytes:
    """Check ``recipient`` against ``policy`` and wrap ``plaintext`` for its public key, or raise."""
    public_key_der = authorize_recipient(recipient, policy, now=now)
    return wrap_for_recipient(plaintext, public_key_der)


def authorize_recipient(
    recipient: Mapping[str, Any], policy: RecipientPolicy, *, now: datetime | None = None
) -> bytes:
    """Apply KMS's Recipient validation and the key policy; return the recipient's public key (DER)."""
    if not isinstance(recipient, Mapping):
        raise RecipientRefused(VALIDATION, "Recipient must be a structure")
    algorithm = recipient.get("KeyEncryptionAlgorithm")
    if algorithm != KEY_ENCRYPTION_ALGORITHM:
        raise RecipientRefused(
            VALIDATION,
            f"KeyEncryptionAlgorithm {algorithm!r} is not supported; use {KEY_ENCRYPTION_ALGORITHM}",
        )
    document = _verified_document(recipient.get("AttestationDocument"), policy, now)
    public_key_der = _recipient_public_key(document)
    _check_image(document, policy)
    return public_key_der


def install(policy: RecipientPolicy) -> None:
    """Make moto's KMS Decrypt behave like real KMS under ``policy`` (replaces any earlier install)."""
    from moto.kms.responses import KmsResponse  # noqa: PLC0415 - moto is a local-mode-only dependency

    original = _installed.setdefault("decrypt", KmsResponse.decrypt)

    def decrypt(response: Any) -> str:
        return _decrypt(response, original, policy)

    KmsResponse.decrypt = decrypt  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    """Restore moto's own Decrypt."""
    from moto.kms.responses import KmsResponse  # noqa: PLC0415 - moto is a local-mode-only dependency

    original = _installed.pop("decrypt", None)
    if original is not None:
        KmsResponse.decrypt = original  # type: ignore[method-assign]


def _decrypt(response: Any, original: Callable[[Any], str], policy: RecipientPolicy) -> str:
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - moto is a local-mode-only dependency

    try:
        public_key_der = _authorize_request(response._get_param("Recipient"), policy)
    except RecipientRefused as refused:
        raise JsonRESTError(refused.code, refused.message) from refused
    answer = json.loads(original(response))
    plaintext = base64.b64decode(answer.pop("Plaintext"))
    wrapped = wrap_for_recipient(plaintext, public_key_der)
    return json.dumps(
        {
            "CiphertextForRecipient": base64.b64encode(wrapped).decode("ascii"),
            "KeyId": answer["KeyId"],
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
    )


def _authorize_request(recipient: Any, policy: RecipientPolicy) -> bytes:
    if recipient is None:
        raise RecipientRefused(
            ACCESS_DENIED,
            "the key policy allows kms:Decrypt only with an attested Recipient "
            "(kms:RecipientAttestation:ImageSha384); this request has none",
        )
    return authorize_recipient(recipient, policy)


def _verified_document(raw: Any, policy: RecipientPolicy, now: datetime | None) -> AttestationDocument:
    if isinstance(raw, str):
        try:
            raw = base64.b64decode(raw, validate=True)
        except binascii.Error as exc:
            raise RecipientRefused(VALIDATION, "AttestationDocument is not valid base64") from exc
    if not isinstance(raw, bytes) or not raw:
        raise RecipientRefused(VALIDATION, "Recipient has no AttestationDocument")
    try:
        return verify_document(
            raw, root_certificate_der=policy.root_certificate_der, at=now, max_age_s=policy.max_age_s
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


def _check_image(document: AttestationDocument, policy: RecipientPolicy) -> None:
    measured = document.pcr_hex(0)
    if measured in policy.allowed_image_sha384:
        return
    debug = " (a debug-mode enclave: all-zero PCRs)" if document.debug_mode else ""
    allowed = ", ".join(sorted(policy.allowed_image_sha384)) or "nothing"
    raise RecipientRefused(
        ACCESS_DENIED,
        f"the enclave's measured PCR0 (kms:RecipientAttestation:ImageSha384) {measured}{debug} "
        f"is not the pinned image measurement; the key policy allows {allowed}",
    )

"""Local KMS Recipient behaviour: KMS's validation of the Recipient, and the condition keys it yields.

Whether an image may decrypt is the key policy's decision: see test_kms_enforcement.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.enclave.cms import unwrap_ciphertext_for_recipient
from app.local.kms_recipient import RecipientRefused, RecipientVerifier, VerifiedRecipient, verify_recipient
from app.local.software_nsm import SoftwareNsm
from tests.attestation_helpers import local_pki
from tests.cms_helpers import public_der, recipient_key

CARD = b"4111111111111111"
PINNED = bytes(range(48))
OTHER = bytes(range(1, 49))


def verifier() -> RecipientVerifier:
    return RecipientVerifier(root_certificate_der=local_pki().root_certificate_der)


def document(
    pcr0: bytes = PINNED, *, public_key: bytes | None = None, age: timedelta = timedelta(0)
) -> bytes:
    nsm = SoftwareNsm(local_pki(), {0: pcr0}, clock=lambda: datetime.now(UTC) - age)
    return nsm.attest(public_key=public_key if public_key is not None else public_der(recipient_key()))


def recipient(doc: bytes | str | None = None, algorithm: str = "RSAES_OAEP_SHA_256") -> dict[str, Any]:
    return {"AttestationDocument": document() if doc is None else doc, "KeyEncryptionAlgorithm": algorithm}


def verified(request: dict[str, Any], **kwargs: Any) -> VerifiedRecipient:
    return verify_recipient(request, verifier(), **kwargs)


def refusal(request: Any, **kwargs: Any) -> RecipientRefused:
    with pytest.raises(RecipientRefused) as caught:
        verified(request, **kwargs)
    return caught.value


def test_a_verified_recipient_wraps_a_ciphertext_it_can_unwrap() -> None:
    wrapped = verified(recipient()).wrap(CARD)
    assert unwrap_ciphertext_for_recipient(wrapped, recipient_key()) == CARD


def test_base64_document_is_accepted() -> None:
    wrapped = verified(recipient(base64.b64encode(document()).decode())).wrap(CARD)
    assert unwrap_ciphertext_for_recipient(wrapped, recipient_key()) == CARD


def test_the_context_carries_image_sha384_and_every_pcr_in_lowercase_hex() -> None:
    doc = SoftwareNsm(local_pki(), {0: PINNED, 8: OTHER}).attest(public_key=public_der(recipient_key()))
    context = verified(recipient(doc)).context()
    assert context["kms:RecipientAttestation:ImageSha384"] == PINNED.hex()
    assert context["kms:RecipientAttestation:PCR0"] == PINNED.hex()
    assert context["kms:RecipientAttestation:PCR8"] == OTHER.hex()
    assert all(key.startswith("kms:RecipientAttestation:") for key in context)


def test_any_measurement_verifies_the_key_policy_decides_who_may_decrypt() -> None:
    context = verified(recipient(document(bytes(48)))).context()
    assert context["kms:RecipientAttestation:ImageSha384"] == "0" * 96


def test_a_recipient_that_is_not_a_structure_is_invalid() -> None:
    assert refusal("document").code == "ValidationException"


def test_other_key_encryption_algorithm_is_invalid() -> None:
    refused = refusal(recipient(algorithm="RSAES_OAEP_SHA_1"))
    assert (refused.code, "RSAES_OAEP_SHA_1" in refused.message) == ("ValidationException", True)


def test_stale_document_is_refused() -> None:
    refused = refusal(recipient(document(age=timedelta(minutes=10))))
    assert (refused.code, "old" in refused.message) == ("ValidationException", True)


def test_document_checked_at_the_given_time() -> None:
    refused = refusal(recipient(), now=datetime.now(UTC) + timedelta(minutes=10))
    assert refused.code == "ValidationException"


def test_document_without_public_key_is_invalid() -> None:
    doc = SoftwareNsm(local_pki(), {0: PINNED}).attest()
    assert refusal(recipient(doc)).message == "the attestation document has no public_key"


def test_non_rsa_public_key_is_invalid() -> None:
    ec_der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert "RSA-2048" in refusal(recipient(document(public_key=ec_der))).message


def test_document_from_another_root_is_invalid() -> None:
    doc = SoftwareNsm(local_pki(1), {0: PINNED}).attest(public_key=public_der(recipient_key()))
    refused = refusal(recipient(doc))
    assert (refused.code, "not valid" in refused.message) == ("ValidationException", True)


def test_bad_base64_is_invalid() -> None:
    assert refusal(recipient("not base64!")).code == "ValidationException"


def test_a_verifier_needs_a_positive_max_age() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        RecipientVerifier(root_certificate_der=b"x", max_age_s=0)

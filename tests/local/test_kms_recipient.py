"""Local KMS Recipient behaviour: the pure policy checks, then boto3 against a real moto server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from app.enclave.cms import unwrap_ciphertext_for_recipient
from app.local import kms_recipient
from app.local.kms_recipient import RecipientPolicy, RecipientRefused, ciphertext_for_recipient
from app.local.software_nsm import SoftwareNsm
from tests.attestation_helpers import local_pki
from tests.cms_helpers import public_der, recipient_key

CARD = b"4111111111111111"
PINNED = bytes(range(48))
OTHER = bytes(range(1, 49))
CONTEXT = {"purpose": "card"}


def policy() -> RecipientPolicy:
    return RecipientPolicy(
        root_certificate_der=local_pki().root_certificate_der, allowed_image_sha384=frozenset({PINNED.hex()})
    )


def document(
    pcr0: bytes = PINNED, *, public_key: bytes | None = None, age: timedelta = timedelta(0)
) -> bytes:
    nsm = SoftwareNsm(local_pki(), {0: pcr0}, clock=lambda: datetime.now(UTC) - age)
    return nsm.attest(public_key=public_key if public_key is not None else public_der(recipient_key()))


def recipient(doc: bytes | str | None = None, algorithm: str = "RSAES_OAEP_SHA_256") -> dict[str, Any]:
    return {"AttestationDocument": document() if doc is None else doc, "KeyEncryptionAlgorithm": algorithm}


def refusal(request: dict[str, Any], **kwargs: Any) -> RecipientRefused:
    with pytest.raises(RecipientRefused) as caught:
        ciphertext_for_recipient(CARD, request, policy(), **kwargs)
    return caught.value


def test_pinned_enclave_gets_a_ciphertext_it_can_unwrap() -> None:
    wrapped = ciphertext_for_recipient(CARD, recipient(), policy())
    assert unwrap_ciphertext_for_recipient(wrapped, recipient_key()) == CARD


def test_base64_document_is_accepted() -> None:
    wrapped = ciphertext_for_recipient(CARD, recipient(base64.b64encode(document()).decode()), policy())
    assert unwrap_ciphertext_for_recipient(wrapped, recipient_key()) == CARD


def test_unpinned_pcr0_is_denied_naming_the_measurement() -> None:
    refused = refusal(recipient(document(OTHER)))
    assert refused.code == "AccessDeniedException"
    assert OTHER.hex() in refused.message
    assert "not the pinned" in refused.message


def test_debug_mode_enclave_is_denied_and_labelled() -> None:
    refused = refusal(recipient(document(bytes(48))))
    assert (refused.code, "debug-mode" in refused.message) == ("AccessDeniedException", True)


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


@pytest.mark.parametrize("pin", ["AB" * 48, "ab" * 47, "zz" * 48])
def test_policy_refuses_malformed_pins(pin: str) -> None:
    with pytest.raises(ValueError, match="lowercase hex"):
        RecipientPolicy(root_certificate_der=b"x", allowed_image_sha384=frozenset({pin}))


@pytest.fixture(scope="module")
def kms() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    kms_recipient.install(policy())
    host, port = server.get_host_and_port()
    try:
        yield boto3.client(
            "kms",
            region_name="us-east-1",
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
    finally:
        kms_recipient.uninstall()
        server.stop()


@pytest.fixture(scope="module")
def ciphertext(kms: Any) -> bytes:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob: bytes = kms.encrypt(KeyId=key_id, Plaintext=CARD, EncryptionContext=CONTEXT)["CiphertextBlob"]
    return blob


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def test_server_decrypt_with_recipient_unwraps_to_the_plaintext(kms: Any, ciphertext: bytes) -> None:
    answer = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=recipient())
    assert unwrap_ciphertext_for_recipient(answer["CiphertextForRecipient"], recipient_key()) == CARD


def test_server_answer_has_no_plaintext(kms: Any, ciphertext: bytes) -> None:
    answer = kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=recipient())
    assert "Plaintext" not in answer
    assert answer["KeyId"].startswith("arn:aws:kms:us-east-1:")
    assert answer["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"


def test_server_denies_unpinned_pcr0(kms: Any, ciphertext: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        kms.decrypt(
            CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=recipient(document(OTHER))
        )
    assert error_code(caught) == "AccessDeniedException"
    assert OTHER.hex() in caught.value.response["Error"]["Message"]


def test_server_denies_decrypt_without_recipient(kms: Any, ciphertext: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=CONTEXT)
    assert error_code(caught) == "AccessDeniedException"
    assert "attested Recipient" in caught.value.response["Error"]["Message"]


def test_server_still_enforces_the_encryption_context(kms: Any, ciphertext: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext={"purpose": "other"}, Recipient=recipient())
    assert error_code(caught) == "InvalidCiphertextException"


def test_server_refuses_a_stale_document(kms: Any, ciphertext: bytes) -> None:
    stale = recipient(document(age=timedelta(minutes=10)))
    with pytest.raises(ClientError) as caught:
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=stale)
    assert error_code(caught) == "ValidationException"


def test_server_refuses_another_key_encryption_algorithm(kms: Any, ciphertext: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        kms.decrypt(
            CiphertextBlob=ciphertext,
            EncryptionContext=CONTEXT,
            Recipient=recipient(algorithm="RSA_AES_KEY_WRAP"),
        )
    assert error_code(caught) == "ValidationException"

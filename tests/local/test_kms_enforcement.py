"""The emulator's KMS under the stack's key policy: boto3 against a real moto server, per principal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from app.enclave.cms import unwrap_ciphertext_for_recipient
from app.local.kms_enforcement import install_policy_enforcement, uninstall_policy_enforcement
from app.local.principals import ACCOUNT_ROOT, ADMINISTRATOR, INSTANCE_ROLE, LocalPrincipal
from app.local.provision import create_key, local_client, local_key_policy
from app.local.software_nsm import SoftwareNsm
from app.shared import deployment
from tests.attestation_helpers import local_pki
from tests.cms_helpers import public_der, recipient_key

REGION = "ap-south-1"  # moto keeps state per region; other test modules use their own
CARD = b"4111111111111111"
PINNED = bytes(range(48))
OTHER = bytes(range(1, 49))
CONTEXT = {**deployment.ENCRYPTION_CONTEXT, "card_id": "c-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    install_policy_enforcement(local_pki().root_certificate_der)
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        uninstall_policy_enforcement()
        server.stop()


def client(endpoint: str, principal: LocalPrincipal = INSTANCE_ROLE) -> Any:
    return local_client("kms", endpoint, REGION, principal=principal)


@pytest.fixture(scope="module")
def key_id(endpoint: str) -> str:
    key, _ = create_key(client(endpoint, ADMINISTRATOR), [PINNED.hex()])
    return key


@pytest.fixture(scope="module")
def ciphertext(endpoint: str, key_id: str) -> bytes:
    blob: bytes = client(endpoint).encrypt(KeyId=key_id, Plaintext=CARD, EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    return blob


def recipient(pcr0: bytes = PINNED) -> dict[str, Any]:
    document = SoftwareNsm(local_pki(), {0: pcr0}).attest(public_key=public_der(recipient_key()))
    return {"AttestationDocument": document, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}


def refusal(call: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return {"Code": str(error.get("Code")), "Message": str(error.get("Message"))}


def test_the_pinned_enclave_gets_only_a_ciphertext_for_recipient(endpoint: str, ciphertext: bytes) -> None:
    answer = client(endpoint).decrypt(
        CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=recipient()
    )
    assert "Plaintext" not in answer
    assert unwrap_ciphertext_for_recipient(answer["CiphertextForRecipient"], recipient_key()) == CARD


def test_the_role_without_an_attestation_is_denied_by_the_deny_statement(
    endpoint: str, ciphertext: bytes
) -> None:
    error = refusal(client(endpoint).decrypt, CiphertextBlob=ciphertext, EncryptionContext=CONTEXT)
    assert error["Code"] == "AccessDeniedException"
    assert error["Message"].startswith(
        f"User: {INSTANCE_ROLE.caller.arn} is not authorized to perform: kms:Decrypt"
    )
    assert "with an explicit deny in a resource-based policy" in error["Message"]
    assert '"DenyDecryptOutsideThePinnedEnclave"' in error["Message"]


@pytest.mark.parametrize("pcr0", [OTHER, bytes(48)], ids=["another image", "debug zeros"])
def test_another_image_is_denied_and_named(endpoint: str, ciphertext: bytes, pcr0: bytes) -> None:
    error = refusal(
        client(endpoint).decrypt,
        CiphertextBlob=ciphertext,
        EncryptionContext=CONTEXT,
        Recipient=recipient(pcr0),
    )
    assert (error["Code"], pcr0.hex() in error["Message"]) == ("AccessDeniedException", True)


def test_a_wrong_app_context_is_not_allowed_by_any_statement(endpoint: str, ciphertext: bytes) -> None:
    wrong = {**CONTEXT, "app": "other"}
    error = refusal(
        client(endpoint).decrypt, CiphertextBlob=ciphertext, EncryptionContext=wrong, Recipient=recipient()
    )
    assert "because no resource-based policy allows the kms:Decrypt action" in error["Message"]


def test_a_wrong_card_id_passes_the_policy_and_fails_the_cryptography(
    endpoint: str, ciphertext: bytes
) -> None:
    wrong = {**CONTEXT, "card_id": "c-2"}
    error = refusal(
        client(endpoint).decrypt, CiphertextBlob=ciphertext, EncryptionContext=wrong, Recipient=recipient()
    )
    assert error["Code"] == "InvalidCiphertextException"


def test_a_bad_recipient_is_a_validation_error(endpoint: str, ciphertext: bytes) -> None:
    bad = {**recipient(), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}
    error = refusal(
        client(endpoint).decrypt, CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=bad
    )
    assert error["Code"] == "ValidationException"


@pytest.mark.parametrize("principal", [ADMINISTRATOR, ACCOUNT_ROOT], ids=lambda p: p.name)
def test_administrators_cannot_decrypt_even_with_the_pinned_attestation(
    endpoint: str, ciphertext: bytes, principal: LocalPrincipal
) -> None:
    call = client(endpoint, principal).decrypt
    error = refusal(call, CiphertextBlob=ciphertext, EncryptionContext=CONTEXT, Recipient=recipient())
    assert error["Code"] == "AccessDeniedException"


def test_the_role_reads_the_key_and_its_policy(endpoint: str, key_id: str) -> None:
    role = client(endpoint)
    arn = role.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    assert json.loads(role.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]) == local_key_policy(
        [PINNED.hex()]
    )


@pytest.mark.parametrize("operation", ["put_key_policy", "create_grant"])
def test_the_role_cannot_change_who_may_use_the_key(endpoint: str, key_id: str, operation: str) -> None:
    table: dict[str, dict[str, Any]] = {
        "put_key_policy": {
            "KeyId": key_id,
            "PolicyName": "default",
            "Policy": json.dumps(local_key_policy([OTHER.hex()])),
        },
        "create_grant": {
            "KeyId": key_id,
            "GranteePrincipal": INSTANCE_ROLE.caller.arn,
            "Operations": ["Decrypt"],
        },
    }
    error = refusal(getattr(client(endpoint), operation), **table[operation])
    assert (error["Code"], '"DenyInstanceRoleKeyManagement"' in error["Message"]) == (
        "AccessDeniedException",
        True,
    )


def test_the_role_has_no_iam_permission_for_calls_that_name_no_key(endpoint: str) -> None:
    error = refusal(client(endpoint).list_keys)
    assert "because no identity-based policy allows the kms:ListKeys action" in error["Message"]


def test_an_unsupported_policy_is_malformed(endpoint: str, key_id: str) -> None:
    policy = {
        "Statement": [{"Effect": "Allow", "NotPrincipal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}]
    }
    call = client(endpoint, ADMINISTRATOR).put_key_policy
    error = refusal(call, KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))
    assert error["Code"] == "MalformedPolicyDocumentException"


def test_an_administrator_can_re_pin_and_the_new_policy_decides_at_once(endpoint: str) -> None:
    admin, role = client(endpoint, ADMINISTRATOR), client(endpoint)
    key, _ = create_key(admin, [PINNED.hex()])
    blob = role.encrypt(KeyId=key, Plaintext=CARD, EncryptionContext=CONTEXT)["CiphertextBlob"]
    admin.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(local_key_policy([OTHER.hex()])))
    answer = role.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT, Recipient=recipient(OTHER))
    assert unwrap_ciphertext_for_recipient(answer["CiphertextForRecipient"], recipient_key()) == CARD
    error = refusal(role.decrypt, CiphertextBlob=blob, EncryptionContext=CONTEXT, Recipient=recipient())
    assert error["Code"] == "AccessDeniedException"

"""The demo's refusal check passes only on AccessDeniedException, and never prints a plaintext."""

from __future__ import annotations

import io
from typing import Any

from app.local.parent_refusal import decrypt_refused
from app.local.principals import ADMINISTRATOR
from app.local.provision import create_key, local_client
from app.shared import deployment
from app.shared.queue_messages import CardMessage, encryption_context

REGION = "ca-central-1"  # moto keeps state per region; other test modules use their own
CARD = "4111111111111111"  # from app/producer/cards.txt


def _card(kms: Any) -> CardMessage:
    key, _ = create_key(
        local_client("kms", kms.meta.endpoint_url, REGION, principal=ADMINISTRATOR), ["ab" * 48]
    )
    context = encryption_context(dict(deployment.ENCRYPTION_CONTEXT), "c-1")
    blob = kms.encrypt(KeyId=key, Plaintext=CARD.encode(), EncryptionContext=context)["CiphertextBlob"]
    return CardMessage("c-1", blob)


def test_a_decrypt_that_succeeds_is_a_security_failure_and_prints_no_number(moto_endpoint: str) -> None:
    kms = local_client("kms", moto_endpoint, REGION)  # plain moto: no key policy enforced, Decrypt succeeds
    out = io.StringIO()
    assert decrypt_refused(kms, _card(kms), out) is False
    assert "SECURITY FAILURE" in out.getvalue()
    assert CARD not in out.getvalue()
    assert CARD[-4:] not in out.getvalue()


def test_a_refusal_no_key_policy_statement_decided_fails_the_check(moto_endpoint: str) -> None:
    kms = local_client("kms", moto_endpoint, REGION)
    out = io.StringIO()  # a blob naming no key: KMS (and moto) refuse it, but not by the key policy
    assert decrypt_refused(kms, CardMessage("c-1", b"\x00" * 80), out) is False
    assert "no key policy statement decided it" in out.getvalue()

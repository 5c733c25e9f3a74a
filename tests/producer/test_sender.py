from __future__ import annotations

import json
import random
from typing import Any

import pytest

from app.local.provision import Provisioned
from app.producer.sender import CardIdRefused, encrypt_card, new_card_id, pick_cards, send_cards
from app.shared.cards import contains_card_number
from app.shared.queue_messages import CardMessage

CONTEXT = {"app": "nitro-enclave-demo"}
NUMBER = "378282246310005"


def _send(kms: Any, sqs: Any, stack: Provisioned, numbers: list[str]) -> Any:
    return send_cards(
        kms,
        sqs,
        queue_url=stack.cards_queue_url,
        key_id=stack.key_arn,
        fixed_context=CONTEXT,
        numbers=numbers,
    )


def _bodies(sqs: Any, stack: Provisioned, count: int) -> list[str]:
    bodies: list[str] = []
    while len(bodies) < count:
        answer = sqs.receive_message(
            QueueUrl=stack.cards_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        bodies += [m["Body"] for m in answer.get("Messages", [])]
    return bodies


def test_picks_are_random_choices_from_the_file() -> None:
    picks = pick_cards(["4111111111111111", "5555555555554444"], 50, random.Random(7))
    assert len(picks) == 50
    assert set(picks) == {"4111111111111111", "5555555555554444"}


def test_the_body_is_a_version_1_card_message_without_the_number(
    kms: Any, sqs: Any, stack: Provisioned
) -> None:
    sent = _send(kms, sqs, stack, [NUMBER])
    (body,) = _bodies(sqs, stack, 1)
    parsed = json.loads(body)
    assert set(parsed) == {"version", "card_id", "ciphertext", "sent_at"}
    assert (parsed["version"], parsed["card_id"]) == (1, sent[0].card_id)
    assert NUMBER not in body


def test_the_ciphertext_is_bound_to_the_card_id(kms: Any, sqs: Any, stack: Provisioned) -> None:
    sent = _send(kms, sqs, stack, [NUMBER])
    message = CardMessage.from_json(_bodies(sqs, stack, 1)[0])
    context = {**CONTEXT, "card_id": sent[0].card_id}
    assert (
        kms.decrypt(CiphertextBlob=message.ciphertext, EncryptionContext=context)["Plaintext"]
        == NUMBER.encode()
    )
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=message.ciphertext, EncryptionContext={**context, "card_id": "other"})


def test_more_than_ten_cards_go_in_several_batches(kms: Any, sqs: Any, stack: Provisioned) -> None:
    batches: list[int] = []
    sent = send_cards(
        kms, sqs, queue_url=stack.cards_queue_url, key_id=stack.key_arn, fixed_context=CONTEXT,
        numbers=[NUMBER] * 23, on_batch=batches.append,
    )  # fmt: skip
    assert batches == [10, 10, 3]
    assert len({card.card_id for card in sent}) == 23


def test_only_last4_and_length_are_remembered(kms: Any, sqs: Any, stack: Provisioned) -> None:
    (card,) = _send(kms, sqs, stack, [NUMBER])
    assert (card.last4, card.length) == ("0005", 15)
    assert NUMBER not in repr(card)


def test_encrypt_uses_the_fixed_context_plus_card_id(kms: Any, stack: Provisioned) -> None:
    blob = encrypt_card(kms, stack.key_arn, CONTEXT, "id-1", NUMBER)
    answer = kms.decrypt(
        CiphertextBlob=blob, EncryptionContext={"app": "nitro-enclave-demo", "card_id": "id-1"}
    )
    assert answer["Plaintext"] == NUMBER.encode()


@pytest.mark.parametrize("card_id", ["4111 1111 1111 1111", "4111-1111-1111-1111", "id:4111111111111111:x"])
def test_a_card_id_holding_a_card_number_is_refused_before_anything_is_sent(
    kms: Any, sqs: Any, stack: Provisioned, card_id: str
) -> None:
    with pytest.raises(CardIdRefused, match="malformed_message: card id #2") as caught:
        send_cards(
            kms, sqs, queue_url=stack.cards_queue_url, key_id=stack.key_alias, fixed_context=CONTEXT,
            numbers=[NUMBER, NUMBER], card_ids=["card-1", card_id],
        )  # fmt: skip
    assert "1111" not in str(caught.value)
    assert sqs.receive_message(QueueUrl=stack.cards_queue_url, WaitTimeSeconds=0).get("Messages") is None


def test_fresh_card_ids_pass_the_rule() -> None:
    assert all(not contains_card_number(new_card_id()) for _ in range(2000))

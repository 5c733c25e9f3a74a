"""SQS bodies: what the producer writes and what a hand-made AWS CLI message may look like."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from app.shared import limits
from app.shared.queue_messages import (
    CARD_ID_MAX_CHARS,
    MAX_CARD_BODY_CHARS,
    MAX_CIPHERTEXT_BYTES,
    CardMessage,
    MalformedMessage,
    ResultMessage,
    encryption_context,
    new_card_id,
)


def test_card_message_round_trip() -> None:
    message = CardMessage("card-1", b"\x00\x01", datetime(2026, 1, 1, tzinfo=UTC))
    assert CardMessage.from_json(message.to_json()) == message


def test_hand_made_message_needs_only_three_fields() -> None:
    body = '{"version":1,"card_id":"hand-1","ciphertext":"' + base64.b64encode(b"blob").decode() + '"}'
    assert CardMessage.from_json(body) == CardMessage("hand-1", b"blob")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"version":2,"card_id":"a","ciphertext":"AQ=="}', "unsupported version 2"),
        ('{"version":1,"ciphertext":"AQ=="}', "card_id"),
        ('{"version":1,"card_id":"a b","ciphertext":"AQ=="}', "card_id"),
        ('{"version":1,"card_id":"a","ciphertext":"%%%"}', "base64"),
        ('{"version":1,"card_id":"a"}', "ciphertext missing"),
        ('{"version":1,"card_id":"a","ciphertext":"AQ==","sent_at":"yesterday"}', "ISO-8601"),
    ],
)
def test_malformed_bodies_say_why(body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        CardMessage.from_json(body)


def test_the_number_is_never_in_the_body_in_clear() -> None:
    assert "last4" not in CardMessage("c", b"x").to_json()


def test_encryption_context_adds_the_card_id() -> None:
    assert encryption_context({"app": "demo"}, "c-1") == {"app": "demo", "card_id": "c-1"}


def test_result_round_trip() -> None:
    result = ResultMessage(
        "c", "m", "ok", last4="1111", enclave_ms=1.5, processed_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert ResultMessage.from_json(result.to_json()) == result


def _card_body(**fields: object) -> str:
    body: dict[str, object] = {"version": 1, "card_id": "c-1", "ciphertext": "AAAA", **fields}
    return json.dumps(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[" * 100_000 + "]" * 100_000, "more than"),  # was RecursionError; now over the size cap
        ("[" * 4_000 + "]" * 4_000, "nested deeper"),  # under the cap: the depth bound
        (_card_body(ciphertext="AAAA€AAA"), "not valid base64"),  # was ValueError
        (_card_body(version=True), "unsupported version"),  # True == 1 in Python
        (_card_body(version=1.0), "unsupported version"),
        (_card_body(card_id="card-1\n"), "card_id"),  # `$` matches before a final newline
    ],
)
def test_poison_bodies_are_malformed_messages(body: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        CardMessage.from_json(body)


def test_an_unsupported_version_is_not_echoed_whole() -> None:
    with pytest.raises(MalformedMessage) as caught:
        CardMessage.from_json(_card_body(version="v" * 240_000))
    assert len(str(caught.value)) < 200


def test_a_result_is_bounded_whatever_its_error_message() -> None:
    result = ResultMessage(
        card_id="c-1", message_id="m" * 10_000, status="rejected", error_code="x", error_message="e" * 10**6
    )
    assert len(result.to_json()) < 2048


@pytest.mark.parametrize("card_id", ["4111111111111111", "4111-1111-1111-1111", "id:4111111111111111:x"])
def test_a_card_id_holding_a_card_number_is_malformed_and_not_echoed(card_id: str) -> None:
    body = '{"version":1,"card_id":"%s","ciphertext":"AQ=="}' % card_id  # noqa: UP031
    with pytest.raises(MalformedMessage, match="may be a card number") as caught:
        CardMessage.from_json(body)
    assert "1111" not in str(caught.value)


def test_new_card_ids_never_trip_the_rule() -> None:
    draws = iter(["4111-1111-1111-1111", "id:4111111111111111", "card-7"])
    assert new_card_id(lambda: next(draws)) == "card-7"


@pytest.mark.parametrize("reader", [CardMessage.from_json, ResultMessage.from_json])
def test_a_256_kb_hostile_body_is_refused_by_size_before_any_parse(
    reader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[object] = []

    def record(*args: object) -> int:
        parsed.append(args)
        return 0

    monkeypatch.setattr(limits, "nesting_depth", record)
    body = '{"version":1,"card_id":"a","ciphertext":"' + '\\"' * (128 * 1024) + '"}'
    with pytest.raises(MalformedMessage, match=r"body refused: body of \d+ bytes or characters, more than"):
        reader(body)
    assert parsed == []


def test_the_largest_card_message_fits_its_cap() -> None:
    largest = CardMessage("x" * CARD_ID_MAX_CHARS, bytes(MAX_CIPHERTEXT_BYTES), datetime.now(UTC)).to_json()
    assert len(largest) <= MAX_CARD_BODY_CHARS - 512
    assert CardMessage.from_json(largest).ciphertext == bytes(MAX_CIPHERTEXT_BYTES)

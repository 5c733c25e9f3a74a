from __future__ import annotations

import time
from typing import Any

from app.local.provision import Provisioned
from app.producer.report import outcome_line
from app.producer.sender import SentCard
from app.producer.waiter import collect_results
from app.shared import result_proof
from app.shared.queue_messages import ResultMessage
from tests.result_signing import SigningEnclave


def _sent(card_id: str, last4: str = "1111") -> SentCard:
    return SentCard(card_id=card_id, last4=last4, length=16, sent_monotonic=time.monotonic())


def _publish(sqs: Any, stack: Provisioned, *results: ResultMessage) -> None:
    for result in results:
        sqs.send_message(QueueUrl=stack.results_queue_url, MessageBody=result.to_json())


def _ok(card_id: str, last4: str = "1111") -> ResultMessage:
    return ResultMessage(card_id=card_id, message_id=f"m-{card_id}", status="ok", last4=last4)


def _queue_depth(sqs: Any, stack: Provisioned) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.results_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_collects_a_result_for_every_sent_card(sqs: Any, stack: Provisioned) -> None:
    _publish(sqs, stack, _ok("a"), _ok("b"))
    collected = collect_results(sqs, stack.results_queue_url, [_sent("a"), _sent("b")], timeout_s=5)
    assert sorted(o.sent.card_id for o in collected.outcomes) == ["a", "b"]
    assert collected.missing == ()


def test_results_for_other_cards_are_left_on_the_queue(sqs: Any, stack: Provisioned) -> None:
    _publish(sqs, stack, _ok("mine"), _ok("someone-else"))
    collect_results(sqs, stack.results_queue_url, [_sent("mine")], timeout_s=5)
    assert _queue_depth(sqs, stack) == 1


def test_duplicate_results_are_consumed_once(sqs: Any, stack: Provisioned) -> None:
    _publish(sqs, stack, _ok("dup"), _ok("dup"), _ok("other"))
    collected = collect_results(sqs, stack.results_queue_url, [_sent("dup"), _sent("other")], timeout_s=5)
    assert len(collected.outcomes) == 2


def test_a_wrong_last4_is_not_a_match(sqs: Any, stack: Provisioned) -> None:
    _publish(sqs, stack, _ok("w", last4="9999"))
    (outcome,) = collect_results(sqs, stack.results_queue_url, [_sent("w")], timeout_s=5).outcomes
    assert not outcome.matches


def test_a_rejected_card_is_not_a_match(sqs: Any, stack: Provisioned) -> None:
    rejected = ResultMessage(card_id="r", message_id="m", status="rejected", error_code="access_denied")
    _publish(sqs, stack, rejected)
    (outcome,) = collect_results(sqs, stack.results_queue_url, [_sent("r")], timeout_s=5).outcomes
    assert not outcome.matches


def test_a_timeout_reports_the_missing_cards(sqs: Any, stack: Provisioned) -> None:
    _publish(sqs, stack, _ok("here"))
    collected = collect_results(sqs, stack.results_queue_url, [_sent("here"), _sent("lost")], timeout_s=1.5)
    assert [card.card_id for card in collected.missing] == ["lost"]


SIGNED_CIPHERTEXT = result_proof.sha256_hex(b"ciphertext")  # what tests.result_signing signs by default
ENCLAVE = SigningEnclave()


def _sent_signed(card_id: str) -> SentCard:
    return SentCard(card_id, "1111", 16, time.monotonic(), SIGNED_CIPHERTEXT)


def test_a_forged_result_arriving_first_does_not_hide_the_genuine_one(sqs: Any, stack: Provisioned) -> None:
    forged = _ok("victim", last4="9999")  # unsigned: anyone may post it
    _publish(sqs, stack, forged, ENCLAVE.sign(_ok("victim")))
    shown: list[str] = []
    collected = collect_results(
        sqs, stack.results_queue_url, [_sent_signed("victim")], timeout_s=10, verifier=ENCLAVE.verifier(),
        on_outcome=lambda outcome: shown.append(outcome.verdict.label if outcome.verdict else "-"),
    )  # fmt: skip
    (outcome,) = collected.outcomes
    assert outcome.verified
    assert outcome.result.last4 == "1111"
    assert shown == ["UNVERIFIED", "verified"]
    assert collected.unverified_seen == 1
    assert _queue_depth(sqs, stack) == 0


def test_an_answer_kms_gave_under_another_key_stays_unverified_on_the_real_queue(
    sqs: Any, stack: Provisioned
) -> None:
    """The enclave's genuine signature over an answer KMS gave under the attacker's own key, posted to the
    results queue for a victim's card id: it never counts, and the card ends the wait unverified."""
    other_key = "arn:aws:kms:eu-west-1:444455556666:key/00000000-0000-4000-8000-00000000000f"
    _publish(sqs, stack, ENCLAVE.sign(_ok("victim", last4="4242"), kms_key_arn=other_key))
    collected = collect_results(
        sqs, stack.results_queue_url, [_sent_signed("victim")], timeout_s=2, verifier=ENCLAVE.verifier()
    )
    (outcome,) = collected.outcomes
    assert outcome.verdict is not None
    assert not outcome.verified
    assert "not the pinned key" in outcome.verdict.reason
    assert collected.unverified_seen == 1


def test_hostile_bodies_neither_crash_the_wait_nor_stop_it(sqs: Any, stack: Provisioned) -> None:
    for body in (
        '{"version":1,"card_id":[1],"message_id":"m","status":"ok"}',
        '{"version":1,"card_id":{"a":1},"message_id":"m","status":"ok"}',
        '{"version":1,"card_id":"h","message_id":"m","status":"ok","last4":"\\ud800","proof":null}',
    ):
        sqs.send_message(QueueUrl=stack.results_queue_url, MessageBody=body)
    _publish(sqs, stack, ENCLAVE.sign(_ok("h")))
    lines: list[str] = []
    collected = collect_results(
        sqs, stack.results_queue_url, [_sent_signed("h")], timeout_s=10, verifier=ENCLAVE.verifier(),
        on_outcome=lambda outcome: lines.append(outcome_line(outcome)),
    )  # fmt: skip
    (outcome,) = collected.outcomes
    assert outcome.verified
    assert any("UNVERIFIED" in line for line in lines)
    for line in lines:
        line.encode("ascii")  # printable: the lone surrogate came out escaped

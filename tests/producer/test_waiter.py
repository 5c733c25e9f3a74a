from __future__ import annotations

import time
from typing import Any

from app.local.provision import Provisioned
from app.producer.sender import SentCard
from app.producer.waiter import collect_results
from app.shared.queue_messages import ResultMessage


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

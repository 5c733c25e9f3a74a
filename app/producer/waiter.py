"""Collects the ResultMessages for the cards this producer sent, ten per ReceiveMessage.

Results for other card ids are left alone (not deleted): they become visible again to their own reader
after the results queue's visibility timeout. Results for our ids, duplicates included, are deleted.
With a verifier, each result gets a verdict (result_proof.py) and a card waits for a verified one until the
deadline; unverified ones are shown as they arrive and counted (`_Collector`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.shared import limits, logs
from app.shared.deployment import MAX_BATCH
from app.shared.queue_messages import MalformedMessage, ResultMessage
from app.shared.result_proof import ResultVerifier, Verdict

from .sender import SentCard

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger(__name__)
MAX_POLL_WAIT_S = 5  # short long-polls so the deadline is honoured closely


@dataclass(frozen=True)
class CardOutcome:
    sent: SentCard
    result: ResultMessage
    latency_ms: float
    verdict: Verdict | None = None  # None: not checked (no verifier given)

    @property
    def matches(self) -> bool:
        """Ok, and the enclave's last four digits are the ones this producer encrypted."""
        return self.result.status == "ok" and self.result.last4 == self.sent.last4

    @property
    def verified(self) -> bool:
        return self.verdict is not None and self.verdict.verified


@dataclass(frozen=True)
class Collected:
    outcomes: tuple[CardOutcome, ...]
    missing: tuple[SentCard, ...]  # no result at all (a card with only unverified ones is in outcomes)
    finished_monotonic: float
    unverified_seen: int = 0  # results for our cards that did not verify, replaced or not


class _Collector:
    """The bookkeeping of one wait. Without a verifier the first result for a card is its outcome. With
    one, a card stays pending until a verified result (or the deadline): an unverified one is shown as it
    arrives and kept as the outcome only until a verified one replaces it, so a forged result that arrives
    first can neither stand in for the genuine one nor make it be deleted unread."""

    def __init__(
        self,
        sent: Sequence[SentCard],
        on_outcome: Callable[[CardOutcome], None] | None,
        verifier: ResultVerifier | None,
    ):
        self.pending = {card.card_id: card for card in sent}
        self.done: set[str] = set()
        self.outcomes: dict[str, CardOutcome] = {}
        self.unverified_seen = 0
        self._on_outcome = on_outcome
        self._verifier = verifier

    def take(self, message: MessageTypeDef) -> bool:
        """Record the message if it is a result for one of our cards; True when it should be deleted.
        Never raises: anyone may write to the results queue, and one body must not stop the wait."""
        try:
            return self._take(message)
        except Exception as error:
            logger.warning(
                "result not readable, left on the queue",
                extra=logs.fields(reason=f"{type(error).__name__}: {limits.clip(str(error), 200)}"),
            )
            return False

    def _take(self, message: MessageTypeDef) -> bool:
        try:
            result = ResultMessage.from_json(message.get("Body", ""))
        except MalformedMessage as error:
            logger.warning("unreadable result left on the queue", extra=logs.fields(reason=str(error)))
            return False
        card_id = result.card_id or ""
        if card_id in self.done:
            return True  # a duplicate of a result we already have (at-least-once delivery)
        card = self.pending.get(card_id)
        if card is None:
            return False
        verdict = (
            None
            if self._verifier is None
            else self._verifier.verify(
                result.signed_fields(), result.proof, ciphertext_sha256=card.ciphertext_sha256
            )
        )
        outcome = CardOutcome(card, result, (time.monotonic() - card.sent_monotonic) * 1000, verdict)
        if verdict is not None and not verdict.verified:
            self.unverified_seen += 1
            self.outcomes.setdefault(card_id, outcome)  # shown now; replaced by a verified one
        else:
            self.outcomes[card_id] = outcome
            del self.pending[card_id]
            self.done.add(card_id)
        if self._on_outcome is not None:
            self._on_outcome(outcome)
        return True

    def collected(self) -> Collected:
        missing = tuple(card for card_id, card in self.pending.items() if card_id not in self.outcomes)
        return Collected(tuple(self.outcomes.values()), missing, time.monotonic(), self.unverified_seen)


def collect_results(
    sqs: SQSClient,
    results_queue_url: str,
    sent: Sequence[SentCard],
    timeout_s: float,
    *,
    on_outcome: Callable[[CardOutcome], None] | None = None,
    verifier: ResultVerifier | None = None,
) -> Collected:
    """Wait until every sent card has a result or `timeout_s` passes (each verified when given a verifier)."""
    collector = _Collector(sent, on_outcome, verifier)
    deadline = time.monotonic() + timeout_s
    while collector.pending and (remaining := deadline - time.monotonic()) > 0:
        answer = sqs.receive_message(
            QueueUrl=results_queue_url,
            MaxNumberOfMessages=MAX_BATCH,
            WaitTimeSeconds=min(MAX_POLL_WAIT_S, max(1, math.ceil(remaining))),
        )
        messages = answer.get("Messages", [])
        _delete(sqs, results_queue_url, [m["ReceiptHandle"] for m in messages if collector.take(m)])
    return collector.collected()


def _delete(sqs: SQSClient, queue_url: str, handles: Sequence[str]) -> None:
    if not handles:
        return
    entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
    answer = sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
    for failure in answer.get("Failed", []):
        logger.warning("result not deleted", extra=logs.fields(code=failure.get("Code")))

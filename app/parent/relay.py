"""The relay: cards queue → enclave → results queue, with retries and the dead-letter queue.

For each batch of up to 10: parse, send every card to the enclave at once (one connection, pipelined),
park permanent failures on the dead-letter queue with their error code, publish the answers, delete
what was published, and push transient failures back with exponential back-off. A message is deleted
only after its result (and, if rejected, its dead-letter copy) is safely stored. Each message has its
own failure boundary: whatever goes wrong with one (even a bug of ours: `internal`) settles that one,
never the rest of its batch. Never sees a full number: the enclave answers with four digits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from app.parent import queues
from app.parent.dead_letter_body import dead_letter_body
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.parent.enclave_pool import EnclavePool
from app.parent.queues import Received
from app.shared import cards, deployment, limits, logs, protocol
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode, Op
from app.shared.queue_messages import CardMessage, MalformedMessage, ResultMessage, encryption_context

log = logging.getLogger(__name__)

# The relay's first and last lines; `make bench` reads its SQS request counts off both.
STARTED_LINE = "relay started"
STOPPED_LINE = "relay stopped"
BASE_BACKOFF_S = 2
MAX_BACKOFF_S = 300
IDLE_PAUSE_S = 1.0  # after a batch where the enclave was unreachable, so pollers do not spin
# The enclave works on at most KMS_CONNECTIONS cards at once (its workers' KMS connections together):
# that many cards in flight keeps it busy, and the enclave pool's window holds the relay to it.
DEFAULT_POLLERS = -(-deployment.KMS_CONNECTIONS // deployment.MAX_BATCH)
# KMS is eventually consistent: a key policy change (a roll's new PCR0) reaches every KMS host "typically
# [in] less than a few seconds", "in some cases several minutes" (AWS KMS Developer Guide, "AWS KMS eventual
# consistency"). One passing canary proves that one KMS host has the new policy, not all of them: for this
# long after the relay starts, `access_denied` is retried with the queue's back-off like a transient code
# (parked with its reason at the queue's last allowed receive, as those are); afterwards it is permanent.
PROPAGATION_GRACE_S = 300.0


@dataclass(frozen=True)
class RelaySettings:
    cards_queue_url: str
    results_queue_url: str
    dead_letter_queue_url: str
    region: str
    encryption_context: Mapping[str, str]
    enclave_url: str
    key_id: str  # the deployment's key, by ARN (app.keypolicy.key_arn); the enclave names it in Decrypt
    pollers: int = DEFAULT_POLLERS
    wait_time_s: int = 20


@dataclass
class _Fate:
    """What became of one received message in this batch."""

    message: Received
    card_id: str | None = None
    result: ResultMessage | None = None  # set when the card is done (ok or rejected)
    retry: EnclaveError | None = None  # set when a later attempt may succeed
    done_ms: float = field(default=0.0)


def backoff_s(receive_count: int) -> int:
    """Seconds a transiently failed message stays invisible: 2, 4, 8, ... capped at 5 minutes."""
    return int(min(BASE_BACKOFF_S * 2 ** max(receive_count - 1, 0), MAX_BACKOFF_S))


class Relay:
    def __init__(
        self,
        settings: RelaySettings,
        *,
        sqs: Any,
        credentials: Callable[[], Credentials],
        enclave: EnclaveClient | EnclavePool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._started = clock()
        self._sqs = sqs
        self._credentials = credentials
        self._enclave = enclave
        self._max_receives = queues.max_receive_count(sqs, settings.cards_queue_url)
        self._results_max_bytes = queues.max_message_bytes(sqs, settings.results_queue_url)
        self._dlq_max_bytes = queues.max_message_bytes(sqs, settings.dead_letter_queue_url)

    def run(self, stop: threading.Event) -> None:
        """Poll with `pollers` threads until `stop` is set; each finishes its batch before leaving."""
        threads = [
            threading.Thread(target=self._poll_until, args=(stop,), name=f"poller-{n}")
            for n in range(self._settings.pollers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _poll_until(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                messages = queues.receive(
                    self._sqs, self._settings.cards_queue_url, self._settings.wait_time_s
                )
                if messages and not self.process(messages):
                    stop.wait(IDLE_PAUSE_S)
            except Exception as error:  # a poller must outlive any one SQS failure
                log.error(
                    "poll failed", extra=logs.fields(error=type(error).__name__, detail=str(error)[:200])
                )
                stop.wait(IDLE_PAUSE_S)

    def process(self, messages: list[Received]) -> bool:
        """Handle one batch; False when the enclave could not be reached at all."""
        fates = self._ask_enclave(messages)
        self._settle(fates)
        return any(f.retry is None or f.retry.code is not ErrorCode.ENCLAVE_UNAVAILABLE for f in fates)

    def _ask_enclave(self, messages: list[Received]) -> list[_Fate]:
        fates = [_Fate(message) for message in messages]
        prepared: list[tuple[_Fate, dict[str, Any]]] = []
        credentials: list[Credentials] = []  # fetched once per batch, by the first card that needs them
        for fate in fates:
            try:
                body = self._prepare(fate, credentials)
            except Exception as error:  # the boundary: a bug of ours on one message settles that one
                self._settle_bug(fate, error, "a message")
                continue
            if body is not None:
                prepared.append((fate, body))
        pending = self._submit(prepared)
        deadline = time.monotonic() + self._enclave.request_timeout_s
        # One wake-up for the whole batch, not one per answer: each answer is then already there
        # (or the deadline has passed, and `_collect` turns it into a timeout as before).
        futures.wait([future for _, _, future in pending], timeout=self._enclave.request_timeout_s)
        for fate, request_id, future in pending:
            try:
                self._collect(fate, request_id, future, deadline)
            except Exception as error:  # the same boundary, on the answer's side
                self._settle_bug(fate, error, "an answer")
        return fates

    def _submit(self, prepared: list[tuple[_Fate, dict[str, Any]]]) -> list[tuple[_Fate, int, Any]]:
        """Send the batch to the enclave at once (one write per connection); a message the enclave cannot
        take now is deferred. Should sending the batch fail on a bug of ours, each message is sent again
        on its own, inside its own boundary, so the bug settles only the message it is about."""
        outcomes: list[tuple[int, Any] | EnclaveError | None]
        try:
            outcomes = [*self._enclave.submit_each(Op.DECRYPT, [body for _, body in prepared])]
        except Exception as error:
            log.error("relay failed on a batch", extra=logs.fields(error=type(error).__name__))
            outcomes = [self._submit_alone(fate, body) for fate, body in prepared]
        pending = []
        for (fate, _), outcome in zip(prepared, outcomes, strict=True):
            if isinstance(outcome, EnclaveError):
                fate.retry = outcome
            elif outcome is not None:
                pending.append((fate, *outcome))
        return pending

    def _submit_alone(self, fate: _Fate, body: dict[str, Any]) -> tuple[int, Any] | EnclaveError | None:
        try:
            return self._enclave.submit(Op.DECRYPT, body)
        except EnclaveError as error:
            return error
        except Exception as error:  # the boundary
            self._settle_bug(fate, error, "a message")
            return None

    def _prepare(self, fate: _Fate, credentials: list[Credentials]) -> dict[str, Any] | None:
        """Parse one message into the enclave's request body; None when it is already settled or deferred."""
        try:
            card = CardMessage.from_json(fate.message.body)
        except MalformedMessage as error:
            self._reject(fate, ErrorCode.MALFORMED_MESSAGE, str(error))
            return None
        fate.card_id = card.card_id
        try:
            if not credentials:
                credentials.append(self._credentials())
        except Exception as error:  # credential refresh failures (IMDS down, expired role)
            fate.retry = EnclaveError(
                ErrorCode.CREDENTIALS_EXPIRED, f"no credentials: {type(error).__name__}"
            )
            return None
        request = DecryptRequest(
            ciphertext=card.ciphertext,
            encryption_context=encryption_context(dict(self._settings.encryption_context), card.card_id),
            region=self._settings.region,
            credentials=credentials[0],
            key_id=self._settings.key_id,
            message_id=fate.message.message_id,
        )
        return protocol.decrypt_body(request)

    def _collect(self, fate: _Fate, request_id: int, future: Any, deadline: float) -> None:
        try:
            body = self._enclave.wait(request_id, future, deadline)
            answer = protocol.parse_decrypt_result(body)
        except EnclaveError as error:
            if error.retryable or self._still_propagating(error.code):
                fate.retry = error
            else:
                self._reject(fate, error.code, error.reason, error.proof)
            return
        except protocol.ProtocolError as error:
            self._reject(fate, ErrorCode.INTERNAL, f"enclave answer unreadable: {error}")
            return
        fate.result = ResultMessage(
            card_id=fate.card_id,
            message_id=fate.message.message_id,
            status="ok",
            last4=answer.last4,
            enclave_ms=answer.enclave_ms,
            end_to_end_ms=_since_ms(fate.message.sent_at_ms),
            proof=answer.proof,
        )

    def _still_propagating(self, code: ErrorCode) -> bool:
        """`access_denied` within PROPAGATION_GRACE_S of the relay's start: maybe a KMS host that has not
        got this image's key policy yet, so worth another attempt."""
        return code is ErrorCode.ACCESS_DENIED and self._clock() - self._started < PROPAGATION_GRACE_S

    def _settle_bug(self, fate: _Fate, error: Exception, what: str) -> None:
        """The failure boundary: a bug of ours on one message rejects that message (`internal`) alone.
        No traceback is logged: its text could carry a piece of the body."""
        log.error(f"relay failed on {what}", extra=logs.fields(error=type(error).__name__))
        self._reject(fate, ErrorCode.INTERNAL, f"relay error: {type(error).__name__}")

    def _reject(
        self, fate: _Fate, code: ErrorCode, reason: str, proof: Mapping[str, Any] | None = None
    ) -> None:
        """A rejected result; `proof` only when the enclave itself refused (and signed) with this code."""
        fate.result = ResultMessage(
            card_id=fate.card_id,
            message_id=fate.message.message_id,
            status="rejected",
            error_code=code.value,
            error_message=limits.clip(cards.scrub_card_numbers(reason)),
            end_to_end_ms=_since_ms(fate.message.sent_at_ms),
            proof=proof,
        )

    def _settle(self, fates: list[_Fate]) -> None:
        """Park, then publish, then delete: a result goes out only once its message's dead-letter copy
        (if any) is stored, and is the last write before the delete, so no later failure in this batch
        can make a retry publish it again."""
        self._give_up_on_last_attempt(fates)
        entries = {str(i): fate for i, fate in enumerate(fates)}
        done = {i: (f, f.result) for i, f in entries.items() if f.result is not None}
        rejected = {i: pair for i, pair in done.items() if pair[1].error_code}
        unparked = self._send(
            self._settings.dead_letter_queue_url,
            _dlq_entries(rejected, self._dlq_max_bytes),
            self._dlq_max_bytes,
        )
        unpublished = self._send(
            self._settings.results_queue_url,
            [{"Id": i, "MessageBody": r.to_json()} for i, (_, r) in done.items() if i not in unparked],
            self._results_max_bytes,
        )
        kept = unpublished | unparked  # not safely stored yet: retry rather than delete
        deletable = {i: f.message.receipt_handle for i, (f, _) in done.items() if i not in kept}
        undeleted = self._delete(deletable)
        delays = {
            i: (f.message.receipt_handle, backoff_s(f.message.receive_count))
            for i, f in entries.items()
            if f.retry is not None or i in kept
        }
        queues.delay_batch(self._sqs, self._settings.cards_queue_url, delays)
        for i, fate in entries.items():
            _log_fate(fate, delayed=i in delays, undeleted=i in undeleted)

    def _send(self, queue_url: str, entries: list[dict[str, Any]], max_bytes: int) -> set[str]:
        """Send, and try the failed entries once more, as `_delete` does: a message whose copy or result
        cannot be stored is kept for a retry, and on the queue's last allowed receive that retry would be
        SQS's redrive, which moves it to the dead-letter queue with no reason and publishes no result."""
        failed = queues.send_batch(self._sqs, queue_url, entries, max_bytes)
        if not failed:
            return failed
        again = [entry for entry in entries if entry["Id"] in failed]
        return queues.send_batch(self._sqs, queue_url, again, max_bytes)

    def _delete(self, handles: dict[str, str]) -> set[str]:
        """Delete, and try the failed entries once more: an undeleted message would be published again."""
        undeleted = queues.delete_batch(self._sqs, self._settings.cards_queue_url, handles)
        if not undeleted:
            return undeleted
        again = {i: handles[i] for i in undeleted}
        return queues.delete_batch(self._sqs, self._settings.cards_queue_url, again)

    def _give_up_on_last_attempt(self, fates: list[_Fate]) -> None:
        """A transient failure on the queue's last allowed receive is parked by us, with its reason,
        rather than moved by SQS's redrive with none."""
        for fate in fates:
            if (
                fate.retry is not None
                and self._max_receives
                and fate.message.receive_count >= self._max_receives
            ):
                reason = f"gave up after {fate.message.receive_count} attempts: {fate.retry.reason}"
                self._reject(fate, fate.retry.code, reason, fate.retry.proof)
                fate.retry = None


def _dlq_entries(rejected: Mapping[str, tuple[_Fate, ResultMessage]], max_bytes: int) -> list[dict[str, Any]]:
    return [
        queues.dead_letter_entry(
            entry_id,
            dead_letter_body(fate.message.body),  # never the raw body: re-encoded, or scrubbed wide
            queues.dead_letter_attributes(
                result.error_code or ErrorCode.INTERNAL.value,
                result.error_message or "",
                fate.message.message_id,
            ),
            max_bytes,
        )
        for entry_id, (fate, result) in rejected.items()
    ]


def _since_ms(sent_at_ms: int | None) -> float | None:
    return None if sent_at_ms is None else round(time.time() * 1000 - sent_at_ms, 1)


def _log_fate(fate: _Fate, delayed: bool, undeleted: bool) -> None:
    result = fate.result
    fields = logs.fields(
        message_id=fate.message.message_id,
        card_id=fate.card_id,
        receive_count=fate.message.receive_count,
        status=result.status if result and not delayed else "retry",
        code=(result.error_code if result else None) or (fate.retry.code.value if fate.retry else None),
        enclave_ms=result.enclave_ms if result else None,
        end_to_end_ms=result.end_to_end_ms if result else None,
        delete_failed=undeleted or None,
    )
    if fate.retry is not None:
        log.warning("card will be retried", extra=fields)
    elif result is not None and result.status == "rejected":
        log.warning("card rejected and parked on the dead-letter queue", extra=fields)
    else:
        log.info("card processed", extra=fields)

"""The relay against real SQS calls (moto) and a scripted enclave on TCP: every fate of a message."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from app.parent import queues
from app.parent import relay as relay_module
from app.parent.enclave_client import EnclaveClient
from app.parent.relay import Relay, RelaySettings, backoff_s
from app.producer.sender import new_card_id
from app.shared import protocol, queue_messages
from app.shared.protocol import Credentials, ErrorCode, Op, Request, Response
from app.shared.queue_messages import CardMessage, ResultMessage
from app.shared.result_proof import SignedFields
from tests.enclave.server_helpers import running_server
from tests.number_scan import leaked
from tests.poison_messages import POISON
from tests.result_signing import SigningEnclave

ENCLAVE = SigningEnclave()  # signs the scripted answers as the enclave's own code signs them

REGION = "us-east-1"
MAX_RECEIVES = 3
KEY_ID = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def scripted_enclave(request: Request) -> Response:  # noqa: PLR0911 - one answer per scripted command
    """The ciphertext says what to do: b"ok:NNNN", b"perm", b"clock", b"denied", b"retry"."""
    if request.op is Op.PING:
        return Response(request.id, body={"status": "ok"})
    decrypt = protocol.parse_decrypt(request.body)
    assert decrypt.encryption_context["card_id"]
    command = decrypt.ciphertext.decode()
    if decrypt.key_id != KEY_ID:
        return protocol.error_response(request.id, ErrorCode.WRONG_KEY, "KMS IncorrectKeyException")
    card_id = decrypt.encryption_context["card_id"]
    if command.startswith("ok:"):
        proof = ENCLAVE.proof(SignedFields(card_id, decrypt.message_id, "ok", command[3:], None))
        body = {"last4": command[3:], "kms_ms": 1.0, "enclave_ms": 2.0, "proof": proof}
        return Response(request.id, body=body)
    if command == "perm":
        code = ErrorCode.INVALID_CIPHERTEXT
        proof = ENCLAVE.proof(SignedFields(card_id, decrypt.message_id, "rejected", None, code.value))
        return protocol.error_response(request.id, code, "KMS InvalidCiphertextException", proof)
    if command == "clock":
        return protocol.error_response(request.id, ErrorCode.CLOCK_SKEW, CLOCK_SKEW_ANSWER)
    if command == "denied":
        return protocol.error_response(request.id, ErrorCode.ACCESS_DENIED, DENIED_ANSWER)
    return protocol.error_response(request.id, ErrorCode.KMS_THROTTLED, "KMS ThrottlingException")


DENIED_ANSWER = "KMS AccessDeniedException: the key policy refused this attestation"
CLOCK_SKEW_ANSWER = (
    "KMS InvalidSignatureException: Signature expired: 20261205T070408Z is now earlier than 20261205T070548Z "
    "(20261205T071048Z - 5 min.); the enclave's clock is 399.999 s behind the NSM's (not corrected) at the "
    "last document; this document is discarded: the enclave's next request attests and measures its clock "
    "again"
)


@pytest.fixture(scope="module")
def sqs(moto_endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )


@pytest.fixture
def relay(sqs: Any) -> Iterator[tuple[Relay, RelaySettings]]:
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
    cards = sqs.create_queue(QueueName=f"cards-{suffix}", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    results = sqs.create_queue(QueueName=f"results-{suffix}")["QueueUrl"]
    with running_server(scripted_enclave) as (url, _):
        settings = RelaySettings(
            cards, results, dlq, REGION, {"app": "test"}, url, pollers=1, wait_time_s=0, key_id=KEY_ID
        )
        client = EnclaveClient(url, request_timeout_s=5)
        yield Relay(settings, sqs=sqs, credentials=lambda: Credentials("a", "b"), enclave=client), settings
        client.close()


def _send(sqs: Any, queue_url: str, ciphertext: bytes | None = None, raw: str | None = None) -> str:
    body = raw if raw is not None else CardMessage(new_card_id(), ciphertext or b"").to_json()
    return str(sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"])


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
    return list(answer.get("Messages", []))


def _process_all(sqs: Any, relay: Relay, settings: RelaySettings) -> None:
    relay.process(queues.receive(sqs, settings.cards_queue_url, 0))


def test_ok_cards_are_published_then_deleted(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    subject, settings = relay
    message_ids = {_send(sqs, settings.cards_queue_url, f"ok:{n:04d}".encode()) for n in range(10)}
    _process_all(sqs, subject, settings)
    results = [ResultMessage.from_json(m["Body"]) for m in _drain(sqs, settings.results_queue_url)]
    assert {r.message_id for r in results} == message_ids
    assert all(r.status == "ok" and r.last4 for r in results)
    assert _drain(sqs, settings.cards_queue_url) == []


def test_permanent_failure_is_parked_with_its_code(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    subject, settings = relay
    message_id = _send(sqs, settings.cards_queue_url, b"perm")
    _process_all(sqs, subject, settings)
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == "invalid_ciphertext"
    assert parked[0]["MessageAttributes"]["source_message_id"]["StringValue"] == message_id
    result = ResultMessage.from_json(_drain(sqs, settings.results_queue_url)[0]["Body"])
    assert (result.status, result.error_code) == ("rejected", "invalid_ciphertext")
    assert _drain(sqs, settings.cards_queue_url) == []


def test_malformed_body_is_parked_without_asking_the_enclave(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, raw='{"version":1,"card_id":"x"}')
    _process_all(sqs, subject, settings)
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == "malformed_message"
    assert "ciphertext missing" in parked[0]["MessageAttributes"]["error_message"]["StringValue"]


@pytest.mark.parametrize("command", [b"retry", b"clock"])
def test_transient_failure_is_delayed_not_deleted(
    sqs: Any, relay: tuple[Relay, RelaySettings], command: bytes
) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, command)
    _process_all(sqs, subject, settings)
    assert _drain(sqs, settings.results_queue_url) == []
    assert _drain(sqs, settings.dead_letter_queue_url) == []
    attributes = sqs.get_queue_attributes(
        QueueUrl=settings.cards_queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


@pytest.mark.parametrize(
    ("command", "code", "reason"),
    [
        (b"retry", "kms_throttled", "KMS ThrottlingException"),
        (b"clock", "clock_skew", CLOCK_SKEW_ANSWER[:200]),  # not credentials_expired: the clock, named
    ],
)
def test_last_allowed_attempt_is_parked_by_the_relay_with_the_reason(
    sqs: Any, relay: tuple[Relay, RelaySettings], command: bytes, code: str, reason: str
) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, command)
    for _ in range(MAX_RECEIVES - 1):  # earlier attempts that failed without the relay settling them
        (early,) = queues.receive(sqs, settings.cards_queue_url, 0)
        sqs.change_message_visibility(
            QueueUrl=settings.cards_queue_url, ReceiptHandle=early.receipt_handle, VisibilityTimeout=0
        )
    last = queues.receive(sqs, settings.cards_queue_url, 0)
    assert last[0].receive_count == MAX_RECEIVES
    subject.process(last)
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == code
    message = parked[0]["MessageAttributes"]["error_message"]["StringValue"]
    assert message.startswith(f"gave up after 3 attempts: {reason}")


def test_enclave_down_means_retry_later(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    _, settings = relay
    _send(sqs, settings.cards_queue_url, b"ok:1234")
    down = Relay(
        settings,
        sqs=sqs,
        credentials=lambda: Credentials("a", "b"),
        enclave=EnclaveClient("tcp://127.0.0.1:1"),
    )
    assert down.process(queues.receive(sqs, settings.cards_queue_url, 0)) is False
    assert _drain(sqs, settings.dead_letter_queue_url) == []
    assert _drain(sqs, settings.results_queue_url) == []


def test_run_stops_cleanly_when_asked(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, b"ok:4321")
    stop = threading.Event()
    runner = threading.Thread(target=subject.run, args=(stop,))
    runner.start()
    results: list[dict[str, Any]] = []
    for _ in range(50):
        results = _drain(sqs, settings.results_queue_url)
        if results:
            break
    stop.set()
    runner.join(10)
    assert not runner.is_alive()
    assert ResultMessage.from_json(results[0]["Body"]).last4 == "4321"


@pytest.mark.parametrize(("count", "seconds"), [(1, 2), (2, 4), (3, 8), (20, 300)])
def test_backoff_doubles_and_is_capped(count: int, seconds: int) -> None:
    assert backoff_s(count) == seconds


def test_each_card_is_logged_with_its_ids_and_never_the_credentials(
    sqs: Any, relay: tuple[Relay, RelaySettings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.parent")
    _, settings = relay
    secret = Credentials("AKIDSECRETLOOKING", "very-secret-key", "very-secret-token")
    subject = Relay(
        settings, sqs=sqs, credentials=lambda: secret, enclave=EnclaveClient(settings.enclave_url)
    )
    message_id = _send(sqs, settings.cards_queue_url, b"ok:1111")
    _process_all(sqs, subject, settings)
    records = [r for r in caplog.records if r.getMessage() == "card processed"]
    assert records[0].fields["message_id"] == message_id  # type: ignore[attr-defined]
    for needle in ("AKIDSECRETLOOKING", "very-secret-key", "very-secret-token"):
        assert needle not in caplog.text


def _drain_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Everything on a queue right now (each message received once: it stays invisible for 30 s)."""
    found: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
    ).get("Messages", []):
        found += messages
    return found


def _valid_and(sqs: Any, settings: RelaySettings, poison: str) -> tuple[set[str], str]:
    valid = {_send(sqs, settings.cards_queue_url, f"ok:{n:04d}".encode()) for n in range(9)}
    return valid, _send(sqs, settings.cards_queue_url, raw=poison)


@pytest.mark.parametrize("poison", POISON.values(), ids=POISON.keys())
def test_one_poison_message_never_strands_its_batch(
    sqs: Any, relay: tuple[Relay, RelaySettings], poison: str
) -> None:
    subject, settings = relay
    valid, poisoned = _valid_and(sqs, settings, poison)
    batch = queues.receive(sqs, settings.cards_queue_url, 0)
    assert len(batch) == 10
    subject.process(batch)
    results = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    assert {r.message_id for r in results if r.status == "ok"} == valid
    (rejected,) = [r for r in results if r.status == "rejected"]
    assert (rejected.message_id, rejected.error_code) == (poisoned, "malformed_message")
    (parked,) = _drain_all(sqs, settings.dead_letter_queue_url)
    assert parked["MessageAttributes"]["error_code"]["StringValue"] == "malformed_message"
    assert _drain_all(sqs, settings.cards_queue_url) == []


def test_every_message_the_relay_writes_fits_sqs_limits(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, raw=POISON["1 MiB body"])
    subject.process(queues.receive(sqs, settings.cards_queue_url, 0))
    (result,) = _drain_all(sqs, settings.results_queue_url)
    (parked,) = _drain_all(sqs, settings.dead_letter_queue_url)
    assert len(result["Body"]) < 2048
    attributes = parked["MessageAttributes"]
    assert int(attributes[queues.BODY_TRUNCATED_ATTRIBUTE]["StringValue"]) == len(POISON["1 MiB body"])
    assert queues.message_bytes({"MessageBody": parked["Body"], "MessageAttributes": attributes}) <= (
        queues.SQS_MAX_BYTES
    )


def test_a_bug_of_ours_on_one_message_is_internal_and_the_rest_are_settled(
    sqs: Any, relay: tuple[Relay, RelaySettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    subject, settings = relay
    real = queue_messages.encryption_context

    def buggy(fixed: dict[str, str], card_id: str) -> dict[str, str]:
        if card_id == "trigger-bug":
            raise KeyError("a bug")
        return real(fixed, card_id)

    monkeypatch.setattr(relay_module, "encryption_context", buggy)
    _only_the_bug_is_internal(sqs, subject, settings, "KeyError")


def test_a_bug_of_ours_in_sending_one_request_of_a_batch_settles_only_that_message(
    sqs: Any, relay: tuple[Relay, RelaySettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch goes to the enclave in one write; a request that breaks the encoding breaks that write,
    and the relay then sends each message on its own, so only the one it is about is `internal`."""
    subject, settings = relay
    real = protocol.encode_request

    def buggy(request: Request) -> bytes:
        if request.body.get("encryption_context", {}).get("card_id") == "trigger-bug":
            raise TypeError("a bug")
        return real(request)

    monkeypatch.setattr(protocol, "encode_request", buggy)
    _only_the_bug_is_internal(sqs, subject, settings, "TypeError")


def _only_the_bug_is_internal(sqs: Any, subject: Relay, settings: RelaySettings, error_type: str) -> None:
    """Valid cards and one card `trigger-bug` whose handling hits a bug of ours: every valid card is ok,
    the buggy one alone is rejected as `internal`, naming the exception's type."""
    valid, buggy_id = _valid_and(sqs, settings, CardMessage("trigger-bug", b"ok:0000").to_json())
    subject.process(queues.receive(sqs, settings.cards_queue_url, 0))
    results = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    assert {r.message_id for r in results if r.status == "ok"} == valid
    (rejected,) = [r for r in results if r.status == "rejected"]
    assert (rejected.message_id, rejected.error_code) == (buggy_id, "internal")
    assert error_type in (rejected.error_message or "")


class FailingDeadLetterSqs:
    """The real client, except that the first `failures` SendMessageBatch calls to the dead-letter queue fail
    whole."""

    def __init__(self, sqs: Any, dead_letter_url: str, failures: int = 2) -> None:
        self._sqs = sqs
        self._dlq = dead_letter_url
        self.failures_left = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        if QueueUrl == self._dlq and self.failures_left:
            self.failures_left -= 1
            return {
                "Failed": [{"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in Entries]
            }
        return self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries)


def _relay_over_failing_dead_letters(sqs: Any, settings: RelaySettings, failures: int = 2) -> Relay:
    flaky = FailingDeadLetterSqs(sqs, settings.dead_letter_queue_url, failures)
    return Relay(
        settings,
        sqs=flaky,
        credentials=lambda: Credentials("a", "b"),
        enclave=EnclaveClient(settings.enclave_url),
    )


def test_a_failed_dead_letter_copy_never_duplicates_a_result(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    _, settings = relay
    subject = _relay_over_failing_dead_letters(sqs, settings)
    valid, perm = _valid_and(sqs, settings, CardMessage("perm-1", b"perm").to_json())
    first = queues.receive(sqs, settings.cards_queue_url, 0)
    subject.process(first)  # the dead-letter copy fails: the rejected card is kept for a retry
    (handle,) = [m.receipt_handle for m in first if m.message_id == perm]
    sqs.change_message_visibility(
        QueueUrl=settings.cards_queue_url, ReceiptHandle=handle, VisibilityTimeout=0
    )
    subject.process(queues.receive(sqs, settings.cards_queue_url, 0))  # the retry parks it
    results = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    assert sorted(r.message_id for r in results) == sorted({*valid, perm})  # each exactly once
    assert len(_drain_all(sqs, settings.dead_letter_queue_url)) == 1
    assert _drain_all(sqs, settings.cards_queue_url) == []


def test_a_dead_letter_copy_that_fails_once_is_sent_again_at_once(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    _, settings = relay
    subject = _relay_over_failing_dead_letters(sqs, settings, failures=1)
    valid, perm = _valid_and(sqs, settings, CardMessage("perm-2", b"perm").to_json())
    subject.process(queues.receive(sqs, settings.cards_queue_url, 0))  # one pass settles everything
    results = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    assert sorted(r.message_id for r in results) == sorted({*valid, perm})
    assert len(_drain_all(sqs, settings.dead_letter_queue_url)) == 1
    assert _drain_all(sqs, settings.cards_queue_url) == []


def test_the_enclaves_signed_answers_reach_the_results_queue_verifiable(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    subject, settings = relay
    ids = {_send(sqs, settings.cards_queue_url, b"ok:4242"), _send(sqs, settings.cards_queue_url, b"perm")}
    _send(sqs, settings.cards_queue_url, raw='{"version":1,"card_id":"x"}')
    _process_all(sqs, subject, settings)
    results = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    verifier = ENCLAVE.verifier()
    verdicts = {r.message_id: verifier.verify(r.signed_fields(), r.proof) for r in results}
    assert len(verdicts) == 3
    assert {m for m, v in verdicts.items() if v.verified} == ids  # signed over the relay's message ids
    (relay_made,) = [v for m, v in verdicts.items() if m not in ids]
    assert relay_made.reason == "no proof: the enclave did not sign this result"  # malformed_message


@pytest.mark.parametrize(
    "card_id",
    [
        "4111111111111111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "4111:1111:1111:1111",
        "id:4111111111111111:x",
        "order-4111-111111-11111-1",
        "4111 1111 1111 1111",
        "4111+1111+1111+1111",
        "4111|1111|1111|1111",
        "4111,1111,1111,1111",
        "4111\t1111\t1111\t1111",
        "\uff14\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11\uff11",
        "\u0664\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661\u0661",
    ],
)
def test_a_card_id_holding_a_card_number_is_refused_and_never_echoed(
    sqs: Any, relay: tuple[Relay, RelaySettings], caplog: pytest.LogCaptureFixture, card_id: str
) -> None:
    caplog.set_level(logging.INFO)
    subject, settings = relay
    body = json.dumps({"version": 1, "card_id": card_id, "ciphertext": "b2s6MTExMQ=="})  # b"ok:1111"
    _send(sqs, settings.cards_queue_url, raw=body)
    _process_all(sqs, subject, settings)
    (result,) = [ResultMessage.from_json(m["Body"]) for m in _drain_all(sqs, settings.results_queue_url)]
    assert (result.status, result.error_code, result.card_id) == ("rejected", "malformed_message", None)
    (parked,) = _drain_all(sqs, settings.dead_letter_queue_url)
    assert parked["MessageAttributes"]["error_code"]["StringValue"] == "malformed_message"
    assert "****1111" in parked["Body"]  # scrubbed to its last four
    everything = json.dumps([parked, result.to_json()]) + caplog.text
    assert leaked(["4111111111111111"], everything) == []
    assert leaked(["4111111111111111"], json.dumps(body)) == ["...1111"]  # the scan sees this form


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _relay_with_clock(sqs: Any, settings: RelaySettings, clock: _Clock) -> tuple[Relay, EnclaveClient]:
    client = EnclaveClient(settings.enclave_url, request_timeout_s=5)
    subject = Relay(settings, sqs=sqs, credentials=lambda: Credentials("a", "b"), enclave=client, clock=clock)
    return subject, client


def _not_visible(sqs: Any, queue_url: str) -> str:
    names = ["ApproximateNumberOfMessagesNotVisible"]
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"][names[0]])


def test_access_denied_is_retried_while_kms_may_still_propagate(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    # A KMS host that has not got the new key policy yet refuses this image; another try may reach one
    # that has.
    _, settings = relay
    clock = _Clock()
    subject, client = _relay_with_clock(sqs, settings, clock)
    clock.now += 60  # a minute after the relay's start: KMS may take "several minutes"
    _send(sqs, settings.cards_queue_url, b"denied")
    _process_all(sqs, subject, settings)
    client.close()
    assert _drain(sqs, settings.dead_letter_queue_url) == []
    assert _drain(sqs, settings.results_queue_url) == []
    assert _not_visible(sqs, settings.cards_queue_url) == "1"


def test_access_denied_after_the_grace_window_is_parked_at_once(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    _, settings = relay
    clock = _Clock()
    subject, client = _relay_with_clock(sqs, settings, clock)
    clock.now += relay_module.PROPAGATION_GRACE_S
    _send(sqs, settings.cards_queue_url, b"denied")
    _process_all(sqs, subject, settings)
    client.close()
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == "access_denied"
    assert parked[0]["MessageAttributes"]["error_message"]["StringValue"] == DENIED_ANSWER


def test_access_denied_within_the_grace_window_is_parked_at_the_last_attempt(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    # A changed image is refused for good: its cards end parked with access_denied and KMS's answer, as
    # any transient code does on the queue's last allowed receive (SQS's redrive would give no reason).
    _, settings = relay
    subject, client = _relay_with_clock(sqs, settings, _Clock())
    _send(sqs, settings.cards_queue_url, b"denied")
    for _ in range(MAX_RECEIVES - 1):
        (early,) = queues.receive(sqs, settings.cards_queue_url, 0)
        sqs.change_message_visibility(
            QueueUrl=settings.cards_queue_url, ReceiptHandle=early.receipt_handle, VisibilityTimeout=0
        )
    subject.process(queues.receive(sqs, settings.cards_queue_url, 0))
    client.close()
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == "access_denied"
    message = parked[0]["MessageAttributes"]["error_message"]["StringValue"]
    assert message == f"gave up after {MAX_RECEIVES} attempts: {DENIED_ANSWER}"

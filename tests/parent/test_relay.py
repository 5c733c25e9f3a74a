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
from app.parent.enclave_client import EnclaveClient
from app.parent.relay import Relay, RelaySettings, backoff_s
from app.shared import protocol
from app.shared.protocol import Credentials, ErrorCode, Op, Request, Response
from app.shared.queue_messages import CardMessage, ResultMessage
from tests.enclave.server_helpers import running_server

REGION = "us-east-1"
MAX_RECEIVES = 3


def scripted_enclave(request: Request) -> Response:
    """The ciphertext says what to do: b"ok:NNNN", b"perm", b"retry"."""
    if request.op is Op.PING:
        return Response(request.id, body={"status": "ok"})
    decrypt = protocol.parse_decrypt(request.body)
    assert decrypt.encryption_context["card_id"]
    command = decrypt.ciphertext.decode()
    if command.startswith("ok:"):
        return Response(request.id, body={"last4": command[3:], "kms_ms": 1.0, "enclave_ms": 2.0})
    if command == "perm":
        return protocol.error_response(
            request.id, ErrorCode.INVALID_CIPHERTEXT, "KMS InvalidCiphertextException"
        )
    return protocol.error_response(request.id, ErrorCode.KMS_THROTTLED, "KMS ThrottlingException")


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
        settings = RelaySettings(cards, results, dlq, REGION, {"app": "test"}, url, pollers=1, wait_time_s=0)
        client = EnclaveClient(url, request_timeout_s=5)
        yield Relay(settings, sqs=sqs, credentials=lambda: Credentials("a", "b"), enclave=client), settings
        client.close()


def _send(sqs: Any, queue_url: str, ciphertext: bytes | None = None, raw: str | None = None) -> str:
    body = raw if raw is not None else CardMessage(uuid.uuid4().hex, ciphertext or b"").to_json()
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


def test_transient_failure_is_delayed_not_deleted(sqs: Any, relay: tuple[Relay, RelaySettings]) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, b"retry")
    _process_all(sqs, subject, settings)
    assert _drain(sqs, settings.results_queue_url) == []
    assert _drain(sqs, settings.dead_letter_queue_url) == []
    attributes = sqs.get_queue_attributes(
        QueueUrl=settings.cards_queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_last_allowed_attempt_is_parked_by_the_relay_with_the_reason(
    sqs: Any, relay: tuple[Relay, RelaySettings]
) -> None:
    subject, settings = relay
    _send(sqs, settings.cards_queue_url, b"retry")
    for _ in range(MAX_RECEIVES - 1):  # earlier attempts that failed without the relay settling them
        (early,) = queues.receive(sqs, settings.cards_queue_url, 0)
        sqs.change_message_visibility(
            QueueUrl=settings.cards_queue_url, ReceiptHandle=early.receipt_handle, VisibilityTimeout=0
        )
    last = queues.receive(sqs, settings.cards_queue_url, 0)
    assert last[0].receive_count == MAX_RECEIVES
    subject.process(last)
    parked = _drain(sqs, settings.dead_letter_queue_url)
    assert parked[0]["MessageAttributes"]["error_code"]["StringValue"] == "kms_throttled"
    assert "gave up after 3 attempts" in parked[0]["MessageAttributes"]["error_message"]["StringValue"]


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

"""The relay's SQS batch calls: split by count and size as SQS counts it, never raising, always bounded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from app.parent import queues
from app.shared import deployment


class RecordingSqs:
    """Records each SendMessageBatch; refuses a call over the limits like SQS (BatchRequestTooLong)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        if len(Entries) > deployment.MAX_BATCH or sum(map(queues.message_bytes, Entries)) > self.max_bytes:
            error = {"Error": {"Code": "AWS.SimpleQueueService.BatchRequestTooLong", "Message": "too long"}}
            raise ClientError(error, "SendMessageBatch")  # type: ignore[arg-type]
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def _entry(entry_id: str, size: int) -> dict[str, Any]:
    return {"Id": entry_id, "MessageBody": "b" * size}


def test_size_counts_body_and_every_attribute_part() -> None:
    entry = {
        "Id": "1",
        "MessageBody": "héllo",  # 6 bytes in UTF-8
        "MessageAttributes": {"code": {"DataType": "String", "StringValue": "abc"}},
    }
    assert queues.message_bytes(entry) == 6 + len("code") + len("String") + 3


def test_a_batch_is_split_by_total_size_not_only_by_count() -> None:
    sqs = RecordingSqs(max_bytes=1000)
    failed = queues.send_batch(sqs, "q", [_entry(str(n), 400) for n in range(5)], max_bytes=1000)
    assert failed == set()
    assert [len(call) for call in sqs.calls] == [2, 2, 1]


def test_a_call_that_fails_whole_reports_its_entries_instead_of_raising() -> None:
    sqs = RecordingSqs(max_bytes=9)  # SQS refuses even what we think fits
    assert queues.send_batch(sqs, "q", [_entry("a", 5), _entry("b", 5)], max_bytes=100) == {"a", "b"}


def test_an_entry_over_the_limit_fails_without_a_call() -> None:
    sqs = RecordingSqs(max_bytes=100)
    assert queues.send_batch(sqs, "q", [_entry("big", 101), _entry("ok", 10)], max_bytes=100) == {"big"}
    assert [[e["Id"] for e in call] for call in sqs.calls] == [["ok"]]


def test_a_dead_letter_copy_too_large_for_its_reason_is_cut_and_marked() -> None:
    body = '{"version":"' + "€" * 400_000 + '"}'  # 1.2 MB of UTF-8
    attributes = queues.dead_letter_attributes("malformed_message", "unsupported version", "m-1")
    entry = queues.dead_letter_entry("0", body, attributes, max_bytes=queues.SQS_MAX_BYTES)
    assert queues.message_bytes(entry) <= queues.SQS_MAX_BYTES
    marker = entry["MessageAttributes"][queues.BODY_TRUNCATED_ATTRIBUTE]["StringValue"]
    assert marker == str(len(body.encode()))
    assert body.startswith(entry["MessageBody"])
    assert entry["MessageAttributes"]["error_code"]["StringValue"] == "malformed_message"


def test_a_dead_letter_copy_that_fits_is_the_body_unchanged() -> None:
    attributes = queues.dead_letter_attributes("not_a_card", "Luhn", "m-2")
    entry = queues.dead_letter_entry("0", "{}", attributes, max_bytes=queues.SQS_MAX_BYTES)
    assert entry["MessageBody"] == "{}"
    assert queues.BODY_TRUNCATED_ATTRIBUTE not in entry["MessageAttributes"]


class _FlakySqs(BaseHTTPRequestHandler):
    """SQS's JSON protocol on loopback: the first request gets a 500 (botocore retries it), the rest 200."""

    protocol_version = "HTTP/1.1"
    seen = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen += 1
        body: dict[str, object] = {"__type": "InternalError"} if self.seen == 1 else {"Messages": []}
        status = 500 if self.seen == 1 else 200
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def flaky_sqs() -> Iterator[str]:
    _FlakySqs.seen = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakySqs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_request_counter_counts_every_attempt_per_operation(flaky_sqs: str) -> None:
    sqs = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="AKIDLOCAL", aws_secret_access_key="local"
    ).client("sqs", endpoint_url=flaky_sqs, config=Config(retries={"mode": "standard", "max_attempts": 3}))
    counter = queues.RequestCounter(sqs)
    assert queues.receive(sqs, f"{flaky_sqs}/000000000000/cards", 0) == []
    assert queues.receive(sqs, f"{flaky_sqs}/000000000000/cards", 0) == []
    assert counter.snapshot() == {"ReceiveMessage": 3}  # two calls, the first one retried once
    assert _FlakySqs.seen == 3

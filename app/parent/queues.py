"""The relay's SQS calls, batched (up to 10 entries and `max_bytes` per call) and reporting which
entries failed.

Every function returns the ids of the entries SQS did NOT accept, so the caller can keep those
messages for a retry instead of assuming success. A call that fails whole (an SQS error, a network
failure) counts every entry in it as failed and is logged with its error type; it never raises.
Sizes are counted as SQS counts them: body plus each attribute's name, data type and value, in bytes.
Bodies are passed through and never logged.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.shared import deployment, logs

log = logging.getLogger(__name__)

RECEIVE_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp")
# SQS: a message, and a whole batch request, at most 1 MiB (1,048,576 bytes); a queue may set a lower
# MaximumMessageSize, which `max_message_bytes` reads.
SQS_MAX_BYTES = 1_048_576
SOURCE_MESSAGE_ID_ATTRIBUTE = "source_message_id"
# On a dead-letter copy whose body had to be cut to fit beside its attributes: the original size.
BODY_TRUNCATED_ATTRIBUTE = "body_truncated_from_bytes"
MAX_ATTRIBUTE_CHARS = 1024


class RequestCounter:
    """The HTTP requests one SQS client sent, per operation, retries included: each is a request SQS bills
    and a botocore call the relay pays CPU for, so `make bench` reports them per card beside that CPU.
    Counted on botocore's `before-send` event, which it emits once per attempt (botocore/endpoint.py,
    `_do_get_response`); a handler returning None leaves the request alone."""

    def __init__(self, sqs: Any) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()  # pollers send from several threads
        sqs.meta.events.register("before-send.sqs", self._count)

    def _count(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self._counts[operation] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class Received:
    """One message off the cards queue, with what the relay needs to decide its fate."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at_ms: int | None


def receive(sqs: Any, queue_url: str, wait_time_s: int) -> list[Received]:
    answer = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=deployment.MAX_BATCH,
        WaitTimeSeconds=wait_time_s,
        MessageSystemAttributeNames=list(RECEIVE_ATTRIBUTES),
    )
    received = []
    for message in answer.get("Messages", []):
        attributes = message.get("Attributes", {})
        sent = attributes.get("SentTimestamp")
        received.append(
            Received(
                message_id=message["MessageId"],
                receipt_handle=message["ReceiptHandle"],
                body=message.get("Body", ""),
                receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
                sent_at_ms=int(sent) if sent else None,
            )
        )
    return received


def _failed_ids(answer: Mapping[str, Any]) -> set[str]:
    return {entry["Id"] for entry in answer.get("Failed", [])}


def _call(call: Callable[..., Mapping[str, Any]], queue_url: str, entries: list[dict[str, Any]]) -> set[str]:
    """One batch call; every entry counts as failed when the call itself fails."""
    try:
        return _failed_ids(call(QueueUrl=queue_url, Entries=entries))
    except (ClientError, BotoCoreError) as error:
        log.warning(
            "SQS batch call failed", extra=logs.fields(error=type(error).__name__, entries=len(entries))
        )
        return {entry["Id"] for entry in entries}


def message_bytes(entry: Mapping[str, Any]) -> int:
    """An entry's size as SQS counts it: body + every attribute's name, data type and value."""
    size = len(entry["MessageBody"].encode("utf-8"))
    for name, attribute in entry.get("MessageAttributes", {}).items():
        value = attribute.get("StringValue", "").encode("utf-8") + attribute.get("BinaryValue", b"")
        size += len(name.encode("utf-8")) + len(attribute["DataType"].encode("utf-8")) + len(value)
    return size


def _chunks(sized: Sequence[tuple[dict[str, Any], int]], max_bytes: int) -> Iterator[list[dict[str, Any]]]:
    """Consecutive groups of at most 10 entries and `max_bytes` in total, from (entry, its size)."""
    chunk: list[dict[str, Any]] = []
    size = 0
    for entry, entry_size in sized:
        if chunk and (len(chunk) == deployment.MAX_BATCH or size + entry_size > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size
    if chunk:
        yield chunk


def send_batch(
    sqs: Any, queue_url: str, entries: Sequence[dict[str, Any]], max_bytes: int = SQS_MAX_BYTES
) -> set[str]:
    """SendMessageBatch in chunks of 10 entries and `max_bytes`; an entry over `max_bytes` alone fails
    without a call. Entries need `Id` and `MessageBody`."""
    sized = [(entry, message_bytes(entry)) for entry in entries]
    fits = [(entry, size) for entry, size in sized if size <= max_bytes]
    failed = {entry["Id"] for entry, size in sized if size > max_bytes}
    for chunk in _chunks(fits, max_bytes):
        failed |= _call(sqs.send_message_batch, queue_url, chunk)
    return failed


def delete_batch(sqs: Any, queue_url: str, handles: Mapping[str, str]) -> set[str]:
    """DeleteMessageBatch for {entry id: receipt handle}."""
    if not handles:
        return set()
    entries = [{"Id": entry_id, "ReceiptHandle": handle} for entry_id, handle in handles.items()]
    return _call(sqs.delete_message_batch, queue_url, entries)


def delay_batch(sqs: Any, queue_url: str, delays: Mapping[str, tuple[str, int]]) -> set[str]:
    """ChangeMessageVisibilityBatch for {entry id: (receipt handle, seconds until visible again)}."""
    if not delays:
        return set()
    entries = [
        {"Id": entry_id, "ReceiptHandle": handle, "VisibilityTimeout": seconds}
        for entry_id, (handle, seconds) in delays.items()
    ]
    return _call(sqs.change_message_visibility_batch, queue_url, entries)


def max_receive_count(sqs: Any, queue_url: str) -> int | None:
    """The queue's redrive maxReceiveCount, so the relay can park a message itself on its last try."""
    answer = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = answer.get("Attributes", {}).get("RedrivePolicy")
    return int(json.loads(policy)["maxReceiveCount"]) if policy else None


def max_message_bytes(sqs: Any, queue_url: str) -> int:
    """The most a message to this queue may weigh: its MaximumMessageSize, never above SQS's 1 MiB."""
    answer = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["MaximumMessageSize"])
    configured = answer.get("Attributes", {}).get("MaximumMessageSize")
    return min(int(configured), SQS_MAX_BYTES) if configured else SQS_MAX_BYTES


def _text(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value[:MAX_ATTRIBUTE_CHARS] or "-"}


def dead_letter_attributes(code: str, message: str, source_message_id: str) -> dict[str, Any]:
    return {
        deployment.DLQ_ATTRIBUTE_ERROR_CODE: _text(code),
        deployment.DLQ_ATTRIBUTE_ERROR_MESSAGE: _text(message),
        SOURCE_MESSAGE_ID_ATTRIBUTE: _text(source_message_id),
    }


def dead_letter_entry(entry_id: str, body: str, attributes: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """A dead-letter copy that fits in `max_bytes`: the body whole, or, when the body and its reason
    together are too large, the body's first bytes and `BODY_TRUNCATED_ATTRIBUTE` = its original size."""
    entry = {"Id": entry_id, "MessageBody": body, "MessageAttributes": attributes}
    if message_bytes(entry) <= max_bytes:
        return entry
    original = len(body.encode("utf-8"))
    marked = {**attributes, BODY_TRUNCATED_ATTRIBUTE: _text(str(original))}
    room = max_bytes - message_bytes({"MessageBody": "", "MessageAttributes": marked})
    # Cut on a character boundary: SQS refuses a body that is not valid Unicode text.
    cut = body.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
    return {"Id": entry_id, "MessageBody": cut or "-", "MessageAttributes": marked}

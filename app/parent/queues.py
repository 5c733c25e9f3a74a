"""The relay's SQS calls, batched (up to 10 per call) and reporting which entries failed.

Every function returns the ids of the entries SQS did NOT accept, so the caller can keep those
messages for a retry instead of assuming success. Bodies are passed through; nothing is logged here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.shared import deployment

RECEIVE_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp")


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


def send_batch(sqs: Any, queue_url: str, entries: Sequence[dict[str, Any]]) -> set[str]:
    """SendMessageBatch in chunks of 10; entries need `Id` and `MessageBody`."""
    failed: set[str] = set()
    for start in range(0, len(entries), deployment.MAX_BATCH):
        chunk = list(entries[start : start + deployment.MAX_BATCH])
        failed |= _failed_ids(sqs.send_message_batch(QueueUrl=queue_url, Entries=chunk))
    return failed


def delete_batch(sqs: Any, queue_url: str, handles: Mapping[str, str]) -> set[str]:
    """DeleteMessageBatch for {entry id: receipt handle}."""
    if not handles:
        return set()
    entries = [{"Id": entry_id, "ReceiptHandle": handle} for entry_id, handle in handles.items()]
    return _failed_ids(sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries))


def delay_batch(sqs: Any, queue_url: str, delays: Mapping[str, tuple[str, int]]) -> set[str]:
    """ChangeMessageVisibilityBatch for {entry id: (receipt handle, seconds until visible again)}."""
    if not delays:
        return set()
    entries = [
        {"Id": entry_id, "ReceiptHandle": handle, "VisibilityTimeout": seconds}
        for entry_id, (handle, seconds) in delays.items()
    ]
    return _failed_ids(sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries))


def max_receive_count(sqs: Any, queue_url: str) -> int | None:
    """The queue's redrive maxReceiveCount, so the relay can park a message itself on its last try."""
    answer = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = answer.get("Attributes", {}).get("RedrivePolicy")
    return int(json.loads(policy)["maxReceiveCount"]) if policy else None


def dead_letter_attributes(code: str, message: str, source_message_id: str) -> dict[str, Any]:
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value[:1024] or "-"}

    return {
        deployment.DLQ_ATTRIBUTE_ERROR_CODE: text(code),
        deployment.DLQ_ATTRIBUTE_ERROR_MESSAGE: text(message),
        "source_message_id": text(source_message_id),
    }

"""Encrypts card numbers with KMS and queues them as CardMessage bodies, ten per SendMessageBatch.

Keeps only each card's id, length and last four digits after sending; never logs or returns a full number.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.shared import logs
from app.shared.cards import LAST_DIGITS_SHOWN
from app.shared.deployment import MAX_BATCH
from app.shared.queue_messages import CardMessage, encryption_context

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)
ENCRYPT_THREADS = 8  # KMS has no batch Encrypt; a few calls in flight hide the round trips


class SendError(RuntimeError):
    """SQS refused some messages of a batch (the message names the first error code)."""


@dataclass(frozen=True)
class SentCard:
    """What the producer remembers about a queued card: enough to check its result, nothing more."""

    card_id: str
    last4: str
    length: int
    sent_monotonic: float


def pick_cards(numbers: Sequence[str], count: int, rng: random.Random | None = None) -> list[str]:
    """`count` random picks with replacement, as the original demo did."""
    chooser = rng or random.Random()  # noqa: S311 - test data, not a secret
    return [chooser.choice(numbers) for _ in range(count)]


def encrypt_card(
    kms: KMSClient, key_id: str, fixed_context: Mapping[str, str], card_id: str, number: str
) -> bytes:
    """KMS Encrypt under the deployment's context plus this card's id."""
    answer = kms.encrypt(
        KeyId=key_id,
        Plaintext=number.encode("ascii"),
        EncryptionContext=encryption_context(dict(fixed_context), card_id),
    )
    return answer["CiphertextBlob"]


def _send_batch(sqs: SQSClient, queue_url: str, messages: Sequence[CardMessage]) -> None:
    entries = [{"Id": str(i), "MessageBody": m.to_json()} for i, m in enumerate(messages)]
    answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
    failed = answer.get("Failed", [])
    if failed:
        raise SendError(f"{len(failed)} of {len(entries)} messages refused: {failed[0].get('Code')}")


def send_cards(
    kms: KMSClient,
    sqs: SQSClient,
    *,
    queue_url: str,
    key_id: str,
    fixed_context: Mapping[str, str],
    numbers: Sequence[str],
    on_batch: Callable[[int], None] | None = None,
) -> list[SentCard]:
    """Encrypt and queue every number; return what is needed to check the results."""
    sent: list[SentCard] = []
    with ThreadPoolExecutor(max_workers=ENCRYPT_THREADS) as pool:
        for start in range(0, len(numbers), MAX_BATCH):
            chunk = numbers[start : start + MAX_BATCH]
            ids = [str(uuid.uuid4()) for _ in chunk]
            blobs = list(pool.map(functools.partial(encrypt_card, kms, key_id, fixed_context), ids, chunk))
            now = datetime.now(UTC)
            _send_batch(sqs, queue_url, [CardMessage(i, b, now) for i, b in zip(ids, blobs, strict=True)])
            at = time.monotonic()
            sent += [SentCard(i, n[-LAST_DIGITS_SHOWN:], len(n), at) for i, n in zip(ids, chunk, strict=True)]
            logger.debug("batch queued", extra=logs.fields(cards=len(chunk), first_card_id=ids[0]))
            if on_batch is not None:
                on_batch(len(chunk))
    return sent

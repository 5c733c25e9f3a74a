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

from app.shared import logs, queue_messages, result_proof
from app.shared.cards import LAST_DIGITS_SHOWN
from app.shared.deployment import MAX_BATCH
from app.shared.queue_messages import CardMessage, MalformedMessage, check_card_id, encryption_context

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)
ENCRYPT_THREADS = 8  # KMS has no batch Encrypt; a few calls in flight hide the round trips


class SendError(RuntimeError):
    """SQS refused some messages of a batch (the message names the first error code)."""


class CardIdRefused(SendError):
    """A card id the relay would refuse as `malformed_message` (the reason never repeats the id)."""

    code = "malformed_message"


def new_card_id() -> str:
    """A random UUID the relay accepts as a card id (see `queue_messages.new_card_id`)."""
    return queue_messages.new_card_id(lambda: str(uuid.uuid4()))


def check_card_ids(card_ids: Sequence[str]) -> None:
    """CardIdRefused for the first id the relay would refuse; called before anything is encrypted or sent
    (an id travels in clear: KMS's encryption context, CloudTrail, logs, results)."""
    for position, card_id in enumerate(card_ids, start=1):
        try:
            check_card_id(card_id)
        except MalformedMessage as error:
            raise CardIdRefused(f"malformed_message: card id #{position}: {error}") from None


@dataclass(frozen=True)
class SentCard:
    """What the producer remembers about a queued card: enough to check its result, nothing more."""

    card_id: str
    last4: str
    length: int
    sent_monotonic: float
    ciphertext_sha256: str | None = None  # of the ciphertext sent: a signed result must name this one


def pick_cards(numbers: Sequence[str], count: int, rng: random.Random | None = None) -> list[str]:
    """`count` random picks with replacement, as the original demo did."""
    chooser = rng or random.Random()  # noqa: S311 - test data, not a secret
    return [chooser.choice(numbers) for _ in range(count)]


def encrypt_card(
    kms: KMSClient, key_id: str, fixed_context: Mapping[str, str], card_id: str, number: str
) -> bytes:
    """KMS Encrypt under the deployment's context plus this card's id (refused first if it holds a number)."""
    check_card_ids([card_id])
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
    card_ids: Sequence[str] | None = None,
) -> list[SentCard]:
    """Encrypt and queue every number (under `card_ids`, one per number, or fresh random ids); return what
    is needed to check the results. A refused card id stops the run before anything is sent."""
    chosen = list(card_ids) if card_ids is not None else [new_card_id() for _ in numbers]
    if len(chosen) != len(numbers):
        raise ValueError(f"{len(chosen)} card ids for {len(numbers)} numbers")
    check_card_ids(chosen)
    sent: list[SentCard] = []
    with ThreadPoolExecutor(max_workers=ENCRYPT_THREADS) as pool:
        for start in range(0, len(numbers), MAX_BATCH):
            chunk = numbers[start : start + MAX_BATCH]
            ids = chosen[start : start + MAX_BATCH]
            blobs = list(pool.map(functools.partial(encrypt_card, kms, key_id, fixed_context), ids, chunk))
            now = datetime.now(UTC)
            _send_batch(sqs, queue_url, [CardMessage(i, b, now) for i, b in zip(ids, blobs, strict=True)])
            at = time.monotonic()
            sent += [
                SentCard(i, n[-LAST_DIGITS_SHOWN:], len(n), at, result_proof.sha256_hex(b))
                for i, n, b in zip(ids, chunk, blobs, strict=True)
            ]
            logger.debug("batch queued", extra=logs.fields(cards=len(chunk), first_card_id=ids[0]))
            if on_batch is not None:
                on_batch(len(chunk))
    return sent

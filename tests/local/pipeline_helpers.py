"""Helpers for the tests that drive a whole local stack (emulator, enclave, relay as children)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.local.provision import local_client
from app.local.stack import StackInfo
from app.producer.card_file import load_cards
from app.producer.sender import SentCard, send_cards
from app.producer.waiter import Collected, collect_results
from app.shared import deployment
from tests.number_scan import leaked


def clients(info: StackInfo) -> tuple[Any, Any]:
    return local_client("kms", info.endpoints.http), local_client("sqs", info.endpoints.http)


def send(info: StackInfo, numbers: list[str]) -> list[SentCard]:
    kms, sqs = clients(info)
    return send_cards(
        kms, sqs, queue_url=info.resources.cards_queue_url, key_id=info.resources.key_arn,
        fixed_context=deployment.ENCRYPTION_CONTEXT, numbers=numbers,
    )  # fmt: skip


def collect(info: StackInfo, sent: list[SentCard], timeout_s: float = 60) -> Collected:
    return collect_results(clients(info)[1], info.resources.results_queue_url, sent, timeout_s)


def parked_with_body(info: StackInfo, body: str, timeout_s: float = 30) -> dict[str, Any]:
    """The dead-letter copy of the message with this body (others are left for their own tests)."""
    sqs = clients(info)[1]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=info.resources.dead_letter_queue_url, MaxNumberOfMessages=10,
            MessageAttributeNames=["All"], VisibilityTimeout=0, WaitTimeSeconds=1,
        )  # fmt: skip
        for message in answer.get("Messages", []):
            if message["Body"] == body:
                found: dict[str, Any] = message
                return found
    raise AssertionError("the message never reached the dead-letter queue")


def all_test_numbers() -> tuple[str, ...]:
    return load_cards()


def full_numbers_in(paths: Sequence[Path], texts: Sequence[str] = ()) -> list[str]:
    """Each (place, number) where a full test card number appears, in any form the tests' own wide scan
    finds (`tests.number_scan`: any separators, Unicode digits, JSON escapes); empty when none does."""
    found: list[str] = []
    contents = [(str(p), p.read_text(encoding="utf-8", errors="replace")) for p in paths if p.is_file()]
    contents += [(f"output {i}", text) for i, text in enumerate(texts)]
    for place, text in contents:
        found += [f"{place}: {hit}" for hit in leaked(all_test_numbers(), text)]
    return found

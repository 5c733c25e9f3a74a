"""One in-process moto server and one set of provisioned queues for the producer tests."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from app.local.provision import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_SECRET_ACCESS_KEY,
    Provisioned,
    local_client,
    provision,
)

REGION = "eu-central-1"  # moto keeps state per region; other test modules use their own


@pytest.fixture(scope="session")
def provisioned(moto_endpoint: str) -> Provisioned:
    return provision(moto_endpoint, region=REGION, pins=["ab" * 48])  # moto here enforces no policy


@pytest.fixture
def stack(moto_endpoint: str, provisioned: Provisioned) -> Provisioned:
    """The session's key with fresh queues, so no test sees another's messages."""
    client = local_client("sqs", moto_endpoint, REGION)
    suffix = uuid.uuid4().hex[:8]
    cards, results = (
        client.create_queue(QueueName=f"{n}-{suffix}")["QueueUrl"] for n in ("cards", "results")
    )
    return dataclasses.replace(provisioned, cards_queue_url=cards, results_queue_url=results)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return local_client("sqs", moto_endpoint, REGION)


@pytest.fixture
def kms(moto_endpoint: str) -> Any:
    return local_client("kms", moto_endpoint, REGION)


@pytest.fixture
def producer_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str, stack: Provisioned) -> None:
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_REGION": stack.region,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "CARDS_QUEUE_URL": stack.cards_queue_url,
        "RESULTS_QUEUE_URL": stack.results_queue_url,
        "KMS_KEY_ID": stack.key_arn,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ENCRYPTION_CONTEXT", raising=False)

"""The emulator's corrections to moto: deletes that race nothing, and Decrypt that checks its KeyId."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import Message, sqs_backends

from app.local import moto_fidelity

ACCOUNT, REGION = "123456789012", "us-east-1"


@pytest.fixture(autouse=True)
def installed() -> None:
    moto_fidelity.install()


def test_concurrent_deletes_leave_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Message.had_receipt_handle

    def yielding(self: Message, handle: str) -> bool:  # widen the race window moto leaves open
        time.sleep(0)
        return bool(original(self, handle))

    monkeypatch.setattr(Message, "had_receipt_handle", yielding)
    backend = sqs_backends[ACCOUNT][REGION]
    name = f"deletes-{uuid.uuid4().hex[:8]}"
    queue = backend.create_queue(name)
    for _ in range(40):
        backend.send_message(name, "x")
    handles = [m.receipt_handle for m in backend.receive_message(name, 40, 0, 600)]

    def delete_all(part: list[str]) -> None:
        for handle in part:
            queue.delete_message(handle)

    workers = [threading.Thread(target=delete_all, args=(handles[k::4],)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(handles) == 40
    assert queue._messages == []  # before the fix, most came back (29 of 40 in one run)


def _kms(endpoint: str) -> Any:
    return boto3.client(
        "kms", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="a", aws_secret_access_key="b"
    )


def test_decrypt_under_another_key_id_is_incorrect_key(moto_endpoint: str) -> None:
    kms = _kms(moto_endpoint)
    ours, other = (kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    kms.create_alias(AliasName=f"alias/ours-{uuid.uuid4().hex[:8]}", TargetKeyId=ours)
    blob = kms.encrypt(KeyId=other, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(ClientError) as caught:
        kms.decrypt(KeyId=ours, CiphertextBlob=blob)
    assert caught.value.response["Error"]["Code"] == "IncorrectKeyException"


def test_decrypt_naming_the_right_key_by_alias_succeeds(moto_endpoint: str) -> None:
    kms = _kms(moto_endpoint)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    alias = f"alias/right-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key)
    blob = kms.encrypt(KeyId=alias, Plaintext=b"x")["CiphertextBlob"]
    assert kms.decrypt(KeyId=alias, CiphertextBlob=blob)["Plaintext"] == b"x"


def test_concurrent_receivers_never_get_the_same_message(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Message.mark_received

    def yielding(self: Message, visibility_timeout: int | None = None) -> None:  # widen moto's race
        time.sleep(0)
        original(self, visibility_timeout=visibility_timeout)

    monkeypatch.setattr(Message, "mark_received", yielding)
    backend = sqs_backends[ACCOUNT][REGION]
    name = f"receives-{uuid.uuid4().hex[:8]}"
    backend.create_queue(name)
    for _ in range(40):
        backend.send_message(name, "x")
    received: list[str] = []

    def receive_all() -> None:
        while batch := backend.receive_message(name, 10, 0, 600):
            received.extend(m.id for m in batch)

    workers = [threading.Thread(target=receive_all) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(received) == 40
    assert len(set(received)) == 40  # each message to one receiver only

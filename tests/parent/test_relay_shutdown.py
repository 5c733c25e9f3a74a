"""SIGTERM to a real relay process: it stops polling, finishes the cards in flight, and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import boto3

from app.shared import protocol
from app.shared.protocol import Op, Request, Response
from app.shared.queue_messages import CardMessage, ResultMessage
from tests.enclave.server_helpers import running_server

REGION = "us-east-1"
CARDS = 10


def test_sigterm_drains_the_cards_in_flight(moto_endpoint: str) -> None:
    sqs: Any = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_endpoint,
        aws_access_key_id="a",
        aws_secret_access_key="b",
    )
    suffix = uuid.uuid4().hex[:8]
    cards, results, dlq = (sqs.create_queue(QueueName=f"{n}-{suffix}")["QueueUrl"] for n in ("c", "r", "d"))
    for n in range(CARDS):
        sqs.send_message(QueueUrl=cards, MessageBody=CardMessage(f"card-{n}", b"x").to_json())
    started = threading.Event()

    def slow_enclave(request: Request) -> Response:
        if request.op is Op.PING:
            return Response(request.id, body={"status": "ok"})
        started.set()
        time.sleep(1.0)  # long enough for SIGTERM to arrive while the batch is in the enclave
        return Response(
            request.id, body=protocol.decrypt_result_body(protocol.DecryptResult("1111", 1.0, 1.0))
        )

    with running_server(slow_enclave) as (url, _):
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": moto_endpoint,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "a",
            "AWS_SECRET_ACCESS_KEY": "b",
            "CARDS_QUEUE_URL": cards,
            "RESULTS_QUEUE_URL": results,
            "DEAD_LETTER_QUEUE_URL": dlq,
            "ENCLAVE_URL": url,
            "RELAY_WAIT_TIME_S": "1",
            "RELAY_POLLERS": "1",
            "KMS_KEY_ID": f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        }
        relay = subprocess.Popen(
            [sys.executable, "-m", "app.parent", "run"], env=env, stderr=subprocess.PIPE, text=True
        )
        assert started.wait(20), "the relay never reached the enclave"
        relay.send_signal(signal.SIGTERM)
        _, stderr = relay.communicate(timeout=30)
    assert relay.returncode == 0, stderr[-2000:]
    assert "draining" in stderr
    published = []
    while batch := sqs.receive_message(QueueUrl=results, MaxNumberOfMessages=10).get("Messages", []):
        published += [ResultMessage.from_json(m["Body"]) for m in batch]
    assert published  # the batch that was in the enclave when SIGTERM came was finished
    left = int(
        sqs.get_queue_attributes(QueueUrl=cards, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    assert len(published) + left == CARDS  # nothing lost: every card is either answered or still queued

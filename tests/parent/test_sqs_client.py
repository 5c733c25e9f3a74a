"""The relay's lean SQS client against the emulator: boto3's names and answers, botocore's errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from app.local import processes
from app.local.processes import ChildSpec
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from app.local.software_nsm import LocalPki
from app.parent.sqs_client import LeanSqs
from app.shared.protocol import Credentials

pytestmark = pytest.mark.slow

CREDS = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    run_dir: Path = tmp_path_factory.mktemp("sqs")
    LocalPki.generate().save(run_dir / "pki")
    spec = ChildSpec("emulator", "app.local.emulator", ("--pki", str(run_dir / "pki")))
    with processes.running(spec, run_dir, processes.has_ready_line) as child:
        yield str(json.loads(child.first_line() or "{}")["http"])


@pytest.fixture
def queue(endpoint: str) -> tuple[LeanSqs, str]:
    url = str(local_client("sqs", endpoint).create_queue(QueueName="lean")["QueueUrl"])
    return LeanSqs(region="us-east-1", credentials=lambda: CREDS, endpoint_url=endpoint), url


def test_a_batch_goes_round_trip_as_boto3_would_see_it(queue: tuple[LeanSqs, str]) -> None:
    sqs, url = queue
    attributes = {"error_code": {"DataType": "String", "StringValue": "x"}}
    entries: list[dict[str, Any]] = [{"Id": str(i), "MessageBody": f"b{i}"} for i in range(3)]
    entries[0]["MessageAttributes"] = attributes
    assert sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", []) == []
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
        MessageSystemAttributeNames=["ApproximateReceiveCount"], MessageAttributeNames=["All"],
    )["Messages"]  # fmt: skip
    assert sorted(m["Body"] for m in got) == ["b0", "b1", "b2"]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for m in got)
    handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    delays = [{**h, "VisibilityTimeout": 0} for h in handles[:1]]
    assert sqs.change_message_visibility_batch(QueueUrl=url, Entries=delays).get("Failed", []) == []
    assert len(sqs.delete_message_batch(QueueUrl=url, Entries=handles)["Successful"]) == 3
    depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_sqs_refusals_are_botocore_client_errors_with_the_code(queue: tuple[LeanSqs, str]) -> None:
    sqs, url = queue
    with pytest.raises(ClientError) as caught:
        sqs.get_queue_attributes(QueueUrl=url + "-missing", AttributeNames=["All"])
    assert "NonExistentQueue" in caught.value.response["Error"]["Code"] or "QueueDoesNotExist" in str(
        caught.value
    )


def test_an_unreachable_endpoint_is_an_endpoint_connection_error() -> None:
    sqs = LeanSqs(
        region="us-east-1",
        credentials=lambda: CREDS,
        endpoint_url=f"http://127.0.0.1:{processes.free_port()}",
    )
    with pytest.raises(EndpointConnectionError):
        sqs.receive_message(QueueUrl="http://127.0.0.1/q", MaxNumberOfMessages=1)

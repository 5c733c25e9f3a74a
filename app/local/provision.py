"""Creates in the emulator what the cloud stack creates: the key and its alias, the cards queue with its
dead-letter queue, the results queue, all with the settings in `app.shared.deployment`.

Local mode only: it talks to the emulator endpoint it is given, never to AWS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from app.shared import deployment
from app.shared.settings import DEFAULT_REGION

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

# moto accepts any credentials; fixed ones keep local mode independent of the user's AWS configuration.
LOCAL_ACCESS_KEY_ID = "local-access-key"
LOCAL_SECRET_ACCESS_KEY = "local-secret-key"  # noqa: S105 - the emulator ignores it


@dataclass(frozen=True)
class Provisioned:
    region: str
    key_id: str
    key_arn: str
    key_alias: str
    cards_queue_url: str
    results_queue_url: str
    dead_letter_queue_url: str
    dead_letter_queue_arn: str


def local_client(service: str, endpoint_url: str, region: str = DEFAULT_REGION) -> Any:
    """A boto3 client for the emulator, with the local credentials."""
    return boto3.session.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        region_name=region,
    ).client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def _create_key(kms: KMSClient) -> tuple[str, str]:
    key = kms.create_key(
        Description=deployment.KEY_DESCRIPTION, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT"
    )["KeyMetadata"]
    kms.create_alias(AliasName=deployment.KEY_ALIAS, TargetKeyId=key["KeyId"])
    return key["KeyId"], key["Arn"]


def _create_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def _queue_attributes(visibility_s: int, retention_s: int) -> dict[str, str]:
    return {
        "VisibilityTimeout": str(visibility_s),
        "MessageRetentionPeriod": str(retention_s),
        "ReceiveMessageWaitTimeSeconds": str(deployment.LONG_POLL_WAIT_S),
    }


def redrive_policy(dead_letter_queue_arn: str) -> str:
    return json.dumps(
        {"deadLetterTargetArn": dead_letter_queue_arn, "maxReceiveCount": str(deployment.MAX_RECEIVE_COUNT)}
    )


def provision(endpoint_url: str, region: str = DEFAULT_REGION) -> Provisioned:
    """Create the key, alias and queues in the emulator at `endpoint_url`."""
    kms: KMSClient = local_client("kms", endpoint_url, region)
    sqs: SQSClient = local_client("sqs", endpoint_url, region)
    key_id, key_arn = _create_key(kms)
    dlq_url, dlq_arn = _create_queue(
        sqs,
        deployment.DEAD_LETTER_QUEUE_NAME,
        _queue_attributes(deployment.CARDS_VISIBILITY_TIMEOUT_S, deployment.DEAD_LETTER_RETENTION_S),
    )
    cards_attributes = _queue_attributes(deployment.CARDS_VISIBILITY_TIMEOUT_S, deployment.CARDS_RETENTION_S)
    cards_url, _ = _create_queue(
        sqs, deployment.CARDS_QUEUE_NAME, {**cards_attributes, "RedrivePolicy": redrive_policy(dlq_arn)}
    )
    results_url, _ = _create_queue(
        sqs,
        deployment.RESULTS_QUEUE_NAME,
        _queue_attributes(deployment.RESULTS_VISIBILITY_TIMEOUT_S, deployment.RESULTS_RETENTION_S),
    )
    return Provisioned(
        region=region,
        key_id=key_id,
        key_arn=key_arn,
        key_alias=deployment.KEY_ALIAS,
        cards_queue_url=cards_url,
        results_queue_url=results_url,
        dead_letter_queue_url=dlq_url,
        dead_letter_queue_arn=dlq_arn,
    )

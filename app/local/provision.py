"""Creates in the emulator what the cloud stack creates: the key (with the stack's key policy, rendered for
the local principals and pin) and its alias, the cards queue with its dead-letter queue, the results queue,
all with the settings in `app.shared.deployment`. The administrator creates them, as a deploy would.

Local mode only: it talks to the emulator endpoint it is given, never to AWS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from app.keypolicy.document import key_policy
from app.local.principals import (
    ACCOUNT_ROOT_ARN,
    ADMINISTRATOR,
    INSTANCE_ROLE,
    INSTANCE_ROLE_ARN,
    LocalPrincipal,
)
from app.shared import deployment
from app.shared.settings import DEFAULT_REGION

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

# The instance role's credentials: what the producer, the relay and a shell on the parent use. Fixed ones
# keep local mode independent of the user's AWS configuration; the emulator knows who each key belongs to.
LOCAL_ACCESS_KEY_ID = INSTANCE_ROLE.access_key_id
LOCAL_SECRET_ACCESS_KEY = INSTANCE_ROLE.secret_access_key


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


def local_client(
    service: str,
    endpoint_url: str,
    region: str = DEFAULT_REGION,
    *,
    principal: LocalPrincipal = INSTANCE_ROLE,
) -> Any:
    """A boto3 client for the emulator, signed as `principal` (default: the instance role)."""
    return boto3.session.Session(
        aws_access_key_id=principal.access_key_id,
        aws_secret_access_key=principal.secret_access_key,
        region_name=region,
    ).client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def local_key_policy(pins: Sequence[str]) -> dict[str, Any]:
    """The stack's key policy (`app.keypolicy.document`) for the local account, role and pin(s)."""
    return key_policy(
        account_root=ACCOUNT_ROOT_ARN,
        role_arn=INSTANCE_ROLE_ARN,
        accepted_pcr0=list(pins),
        encryption_context=deployment.ENCRYPTION_CONTEXT,
    )


def create_key(kms: KMSClient, pins: Sequence[str]) -> tuple[str, str]:
    """A key with the stack's key policy pinned to `pins`; (key id, ARN)."""
    key = kms.create_key(
        Description=deployment.KEY_DESCRIPTION,
        KeySpec="SYMMETRIC_DEFAULT",
        KeyUsage="ENCRYPT_DECRYPT",
        Policy=json.dumps(local_key_policy(pins)),
    )["KeyMetadata"]
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


def provision(endpoint_url: str, region: str = DEFAULT_REGION, *, pins: Sequence[str]) -> Provisioned:
    """Create the key (pinned to `pins`), alias and queues in the emulator at `endpoint_url`, as the
    administrator."""
    kms: KMSClient = local_client("kms", endpoint_url, region, principal=ADMINISTRATOR)
    sqs: SQSClient = local_client("sqs", endpoint_url, region, principal=ADMINISTRATOR)
    key_id, key_arn = create_key(kms, pins)
    kms.create_alias(AliasName=deployment.KEY_ALIAS, TargetKeyId=key_id)
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

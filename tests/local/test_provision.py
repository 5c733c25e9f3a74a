from __future__ import annotations

import json
from typing import Any

import pytest

from app.local.principals import ADMINISTRATOR
from app.local.provision import Provisioned, local_client, local_key_policy, provision
from app.shared import deployment

REGION = "eu-west-3"  # moto keeps state per region; other test modules use their own
PIN = "cd" * 48


@pytest.fixture(scope="module")
def endpoint(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture(scope="module")
def provisioned(endpoint: str) -> Provisioned:
    return provision(endpoint, region=REGION, pins=[PIN])


def _attributes(endpoint: str, url: str) -> dict[str, Any]:
    sqs = local_client("sqs", endpoint, REGION)
    attributes: dict[str, Any] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return attributes


def test_the_alias_names_the_key(endpoint: str, provisioned: Provisioned) -> None:
    kms = local_client("kms", endpoint, REGION)
    assert kms.describe_key(KeyId=deployment.KEY_ALIAS)["KeyMetadata"]["KeyId"] == provisioned.key_id


def test_the_key_carries_the_stacks_key_policy_with_the_local_pin(
    endpoint: str, provisioned: Provisioned
) -> None:
    kms = local_client("kms", endpoint, REGION, principal=ADMINISTRATOR)
    policy = json.loads(kms.get_key_policy(KeyId=provisioned.key_id, PolicyName="default")["Policy"])
    assert policy == local_key_policy([PIN])
    assert PIN in json.dumps(policy)


def test_cards_queue_redrives_to_the_dead_letter_queue(endpoint: str, provisioned: Provisioned) -> None:
    redrive = json.loads(_attributes(endpoint, provisioned.cards_queue_url)["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == provisioned.dead_letter_queue_arn
    assert int(redrive["maxReceiveCount"]) == deployment.MAX_RECEIVE_COUNT


def test_cards_queue_has_the_deployment_settings(endpoint: str, provisioned: Provisioned) -> None:
    attributes = _attributes(endpoint, provisioned.cards_queue_url)
    assert int(attributes["VisibilityTimeout"]) == deployment.CARDS_VISIBILITY_TIMEOUT_S
    assert int(attributes["MessageRetentionPeriod"]) == deployment.CARDS_RETENTION_S
    assert int(attributes["ReceiveMessageWaitTimeSeconds"]) == deployment.LONG_POLL_WAIT_S


def test_dead_letter_queue_keeps_messages_longest(endpoint: str, provisioned: Provisioned) -> None:
    attributes = _attributes(endpoint, provisioned.dead_letter_queue_url)
    assert int(attributes["MessageRetentionPeriod"]) == deployment.DEAD_LETTER_RETENTION_S


def test_results_queue_has_no_redrive(endpoint: str, provisioned: Provisioned) -> None:
    attributes = _attributes(endpoint, provisioned.results_queue_url)
    assert "RedrivePolicy" not in attributes
    assert int(attributes["VisibilityTimeout"]) == deployment.RESULTS_VISIBILITY_TIMEOUT_S


def test_a_message_received_too_often_moves_to_the_dead_letter_queue(
    endpoint: str, provisioned: Provisioned
) -> None:
    sqs = local_client("sqs", endpoint, REGION)
    sqs.send_message(QueueUrl=provisioned.cards_queue_url, MessageBody="poison")
    for _ in range(deployment.MAX_RECEIVE_COUNT + 1):
        sqs.receive_message(QueueUrl=provisioned.cards_queue_url, VisibilityTimeout=0, WaitTimeSeconds=0)
    parked = sqs.receive_message(QueueUrl=provisioned.dead_letter_queue_url, WaitTimeSeconds=1)["Messages"]
    assert [m["Body"] for m in parked] == ["poison"]

"""Queues (encryption, TLS, redrive, retention, deletion) and the outputs users read with jq."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.shared import deployment
from tests.infra.cfn import Json, resources
from tests.infra.conftest import Synth
from tests.infra.test_host_files import tool

OUTPUTS = {
    "InstanceId",
    "EnclaveCid",
    "Region",
    "CardsQueueUrl",
    "DeadLetterQueueUrl",
    "ResultsQueueUrl",
    "KeyArn",
    "KeyAlias",
    "MeasurementsParameter",
    "PinnedPcr0Parameter",
    "PinnedPcr0",
    "AttestationMode",
    "SsmStartSessionCommand",
    "DemoCommand",
    "AttestCommand",
}


def queue(template: Json, construct: str) -> tuple[str, Json]:
    (found,) = [(k, r) for k, r in resources(template, "AWS::SQS::Queue").items() if k.startswith(construct)]
    return found


def test_three_queues_encrypted_and_deleted_on_destroy(template: Json) -> None:
    queues = resources(template, "AWS::SQS::Queue")
    assert len(queues) == 3
    for q in queues.values():
        assert q["Properties"]["SqsManagedSseEnabled"] is True
        assert "KmsMasterKeyId" not in q["Properties"]
        assert q["DeletionPolicy"] == "Delete"
        assert q["Properties"]["MessageRetentionPeriod"] > 0


def test_cards_queue_redrives_to_the_dead_letter_queue(template: Json) -> None:
    dlq_id, _ = queue(template, "QueuesDeadLetterQueue")
    _, cards = queue(template, "QueuesCardsQueue")
    assert cards["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": deployment.MAX_RECEIVE_COUNT,
    }
    assert cards["Properties"]["VisibilityTimeout"] == deployment.CARDS_VISIBILITY_TIMEOUT_S


def test_every_queue_enforces_tls(template: Json) -> None:
    policies = resources(template, "AWS::SQS::QueuePolicy").values()
    protected: set[str] = set()
    for policy in policies:
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Effect"] == "Deny"
        assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        protected.update(q["Ref"] for q in policy["Properties"]["Queues"])
    assert protected == set(resources(template, "AWS::SQS::Queue"))


def test_outputs_are_present_with_jq_friendly_names(default: Synth) -> None:
    outputs = default.template["Outputs"]
    assert set(outputs) >= OUTPUTS
    assert all(name.isalnum() for name in outputs)
    session = outputs["SsmStartSessionCommand"]["Value"]["Fn::Join"][1]
    assert session[0] == "aws ssm start-session --target "
    assert "app.producer --count 10 --wait" in outputs["DemoCommand"]["Value"]
    assert "app.parent attest" in outputs["AttestCommand"]["Value"]
    assert "ssm" not in outputs["AttestCommand"]["Value"]  # the pin is read from the key policy itself
    assert outputs["EnclaveCid"]["Value"] == "16"


@pytest.mark.parametrize("name", ["DemoCommand", "AttestCommand"])
def test_commands_to_run_on_the_instance_pass_shellcheck(name: str, template: Json, tmp_path: Path) -> None:
    value: str = template["Outputs"][name]["Value"]
    prefix = "sudo -i bash -c '"
    assert value.startswith(prefix)
    assert value.endswith("'")
    script = tmp_path / "command.sh"
    script.write_text("#!/bin/bash\n" + value[len(prefix) : -1] + "\n")
    result = subprocess.run(
        [tool("shellcheck"), "-e", "SC1091", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout

"""Queues (encryption, TLS, redrive, retention, deletion) and the outputs users read with jq."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.shared import deployment
from rehearsal.cfn import Resolver
from tests.infra.cfn import Json, evaluate, only, resources
from tests.infra.conftest import Synth
from tests.infra.test_host_files import tool

OUTPUTS = {
    "HostGroupName",
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
    "PreviousPcr0",
    "EifKey",
    "NitroCliVersion",
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
    session = evaluate(outputs["SsmStartSessionCommand"]["Value"])
    group = evaluate(outputs["HostGroupName"]["Value"])
    assert session.startswith('aws ssm start-session --region us-east-1 --target "$(aws autoscaling')
    assert f"--auto-scaling-group-names {group} " in session
    # nitro-demo reads demo.env as data (demo-env.sh); no output sources it
    assert outputs["DemoCommand"]["Value"] == "sudo nitro-demo send 10"
    assert outputs["AttestCommand"]["Value"] == "sudo nitro-demo attest"  # the pin from the key policy itself
    assert outputs["EnclaveCid"]["Value"] == "16"


@pytest.mark.parametrize("name", ["DemoCommand", "AttestCommand"])
def test_commands_to_run_on_the_instance_pass_shellcheck(name: str, template: Json, tmp_path: Path) -> None:
    value: str = template["Outputs"][name]["Value"]
    assert ". /etc" not in value  # demo.env is never evaluated as shell
    assert "source" not in value
    script = tmp_path / "command.sh"
    script.write_text("#!/bin/bash\n" + value + "\n")
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_group_name_and_the_previous_measurement_are_outputs(default: Synth) -> None:
    outputs = default.template["Outputs"]
    group_id, _ = only(default.template, "AWS::AutoScaling::AutoScalingGroup")
    build_id, _ = only(default.template, "Custom::EnclaveImageBuild")
    assert outputs["HostGroupName"]["Value"] == {"Ref": group_id}
    assert outputs["PinnedPcr0"]["Value"] == {"Fn::GetAtt": [build_id, "Pcr0"]}
    previous = outputs["PreviousPcr0"]["Value"]
    accepted = {"Fn::GetAtt": [build_id, "AcceptedPcr0"]}
    assert previous == {"Fn::Select": [1, {"Fn::Split": [",", {"Fn::Join": [",", [accepted, "none"]]}]}]}


@pytest.mark.parametrize(("accepted", "shown"), [("new", "none"), ("new,old", "old")])
def test_the_previous_measurement_reads_none_when_there_is_none(
    accepted: str, shown: str, default: Synth
) -> None:
    build_id, _ = only(default.template, "Custom::EnclaveImageBuild")
    resolver = Resolver(attributes={(build_id, "AcceptedPcr0"): accepted})
    assert resolver.text(default.template["Outputs"]["PreviousPcr0"]["Value"]) == shown

"""Outputs: what a user reads after `cdk deploy -O out.json`; names without spaces, stable for `jq`."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Fn
from constructs import Construct

from infra import constants


@dataclass(frozen=True)
class OutputValues:
    instance_id: str
    enclave_cid: int
    cards_queue_url: str
    dead_letter_queue_url: str
    results_queue_url: str
    key_arn: str
    key_alias: str
    measurements_parameter: str
    pinned_pcr0_parameter: str
    pinned_pcr0: str
    debug: bool
    log_group_name: str
    dashboard_url: str
    dead_letter_alarm_name: str
    send_cards_document: str
    status_document: str


DEMO_COMMAND = (
    f"sudo -i bash -c 'set -a; . {constants.ENV_FILE}; set +a; "
    f"{constants.VENV_PYTHON} -m app.producer --count 10 --wait'"
)
# `attest` reads the pin from the key policy itself (kms:GetKeyPolicy on $KMS_KEY_ID), not from a copy.
ATTEST_COMMAND = (
    f"sudo -i bash -c 'set -a; . {constants.ENV_FILE}; set +a; {constants.VENV_PYTHON} -m app.parent attest'"
)
DEBUG_WARNING = (
    "DEBUG MODE - ATTESTATION IS OFF: the enclave runs with --debug-mode, its console is readable and "
    "the key "
    "policy accepts all-zero PCRs, so any debug-mode enclave on this role can decrypt. Never use real data."
)


def ssm_run_command(instance_id: str, document: str, parameters: str) -> str:
    """`aws ssm send-command`, wait for it, print its output: one line to paste in a shell."""
    target = ["--instance-id ", instance_id, " --region ", Aws.REGION]
    return Fn.join(
        "",
        [
            "id=$(aws ssm send-command --document-name ",
            document,
            " --instance-ids ",
            instance_id,
            f" {parameters}--region ",
            Aws.REGION,
            ' --query Command.CommandId --output text) && aws ssm wait command-executed --command-id "$id" ',
            *target,
            '; aws ssm get-command-invocation --command-id "$id" ',
            *target,
            " --query StandardOutputContent --output text",
        ],
    )


class Outputs(Construct):
    """One CfnOutput per value, with the logical id pinned to its documented name."""

    def __init__(self, scope: Construct, construct_id: str, *, values: OutputValues) -> None:
        super().__init__(scope, construct_id)
        v = values
        self._out("InstanceId", v.instance_id, "The parent EC2 instance")
        self._out("EnclaveCid", str(v.enclave_cid), "vsock CID of the enclave")
        self._out("Region", Aws.REGION, "Region of the stack")
        self._out("CardsQueueUrl", v.cards_queue_url, "SQS queue the producer sends encrypted cards to")
        self._out("DeadLetterQueueUrl", v.dead_letter_queue_url, "Cards that can never be processed")
        self._out("ResultsQueueUrl", v.results_queue_url, "Answers from the enclave (last 4 digits)")
        self._out("KeyArn", v.key_arn, "KMS key for card numbers")
        self._out("KeyAlias", v.key_alias, "Alias of the KMS key")
        self._out(
            "MeasurementsParameter", v.measurements_parameter, "SSM parameter: PCR0 the instance measured"
        )
        self._out("PinnedPcr0Parameter", v.pinned_pcr0_parameter, "SSM parameter with the pinned PCR0")
        self._out("PinnedPcr0", v.pinned_pcr0, "PCR0 the key policy lets decrypt (ImageSha384)")
        self._out(
            "AttestationMode",
            "DEBUG-ATTESTATION-OFF" if v.debug else "PINNED",
            "PINNED: only the measured image decrypts; DEBUG-ATTESTATION-OFF: zeros accepted",
        )
        if v.debug:
            self._out("AttestationWarning", DEBUG_WARNING, "Read this before using the stack")
        self._out(
            "SsmStartSessionCommand",
            Fn.join("", ["aws ssm start-session --target ", v.instance_id, " --region ", Aws.REGION]),
            "Connect to the instance (Session Manager plugin required)",
        )
        self._out("DemoCommand", DEMO_COMMAND, "Run on the instance: 10 cards through the enclave")
        self._out(
            "AttestCommand",
            ATTEST_COMMAND,
            "Run on the instance: verify the enclave against the key policy's pin",
        )
        self._operations(v)

    def _operations(self, v: OutputValues) -> None:
        self._out("LogGroupName", v.log_group_name, "CloudWatch Logs: relay, enclave, vsock-proxy, bootstrap")
        self._out("DashboardUrl", v.dashboard_url, "CloudWatch dashboard: cards, failures, latency, queues")
        self._out(
            "DeadLetterAlarmName",
            v.dead_letter_alarm_name,
            "In alarm while the dead-letter queue holds cards",
        )
        self._out("SendCardsDocument", v.send_cards_document, "SSM document: send Count cards, print results")
        self._out("StatusDocument", v.status_document, "SSM document: status and doctor of every part")
        self._out(
            "SendCardsCommand",
            ssm_run_command(v.instance_id, v.send_cards_document, "--parameters Count=10 "),
            "Paste in your shell: 10 cards through the enclave via SSM, then their results",
        )
        self._out(
            "StatusCommand",
            ssm_run_command(v.instance_id, v.status_document, ""),
            "Paste in your shell: status and doctor via SSM",
        )

    def _out(self, name: str, value: str, description: str) -> CfnOutput:
        output = CfnOutput(self, name, value=value, description=description)
        output.override_logical_id(name)
        return output

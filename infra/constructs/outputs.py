"""Outputs: what a user reads after `cdk deploy -O out.json`; names without spaces, stable for `jq`."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, CfnOutput, Fn
from constructs import Construct


@dataclass(frozen=True)
class OutputValues:
    group_name: str
    enclave_cid: int
    cards_queue_url: str
    dead_letter_queue_url: str
    results_queue_url: str
    key_arn: str
    key_alias: str
    measurements_parameter: str
    pinned_pcr0_parameter: str
    pinned_pcr0: str
    accepted_pcr0: str  # the build's "pcr0[,previous]"
    nitro_cli_version: str  # of the build that made the pinned EIF
    eif_location: str
    debug: bool
    log_group_name: str
    dashboard_url: str
    dead_letter_alarm_name: str
    boot_failure_alarm_name: str
    send_cards_document: str
    status_document: str


DEMO_COMMAND = "sudo nitro-demo send 10"  # nitro-demo reads demo.env as data (demo-env.sh), never sources it
# `attest` reads the pin from the key policy itself (kms:GetKeyPolicy on $KMS_KEY_ID), not from a copy.
ATTEST_COMMAND = "sudo nitro-demo attest"
DEBUG_WARNING = (
    "DEBUG MODE - ATTESTATION IS OFF: the enclave runs with --debug-mode, its console is readable and "
    "the key "
    "policy accepts all-zero PCRs, so any debug-mode enclave on this role can decrypt. Never use real data."
)
NO_PREVIOUS = "none"
# Every host carries this tag (EC2 Auto Scaling adds it to the instances it launches).
GROUP_TAG = "tag:aws:autoscaling:groupName"
POLL_S = 5


def first_host(group_name: str) -> str:
    """Shell words printing the group's first InService instance id: the commands work for whichever hosts
    the group runs now, across rolls and replacements."""
    return Fn.join(
        "",
        [
            "$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names ",
            group_name,
            " --region ",
            Aws.REGION,
            " --query \"AutoScalingGroups[0].Instances[?LifecycleState=='InService'] | [0].InstanceId\""
            " --output text)",
        ],
    )


def ssm_run_on_one_host(group_name: str, document: str, parameters: str) -> str:
    """`aws ssm send-command` on the group's first InService host, wait for it, print its output."""
    region = ["--region ", Aws.REGION]
    target = ['--instance-id "$iid" ', *region]
    return Fn.join(
        "",
        [
            "iid=",
            first_host(group_name),
            " && id=$(aws ssm send-command --document-name ",
            document,
            f' --instance-ids "$iid" {parameters}',
            *region,
            ' --query Command.CommandId --output text) && aws ssm wait command-executed --command-id "$id" ',
            *target,
            '; aws ssm get-command-invocation --command-id "$id" ',
            *target,
            " --query StandardOutputContent --output text",
        ],
    )


def ssm_run_on_every_host(group_name: str, document: str) -> str:
    """`aws ssm send-command` on every host of the group (by its tag), wait until the command is done, print
    each host's output under its instance id."""
    region = ["--region ", Aws.REGION]
    return Fn.join(
        "",
        [
            "id=$(aws ssm send-command --document-name ",
            document,
            f" --targets Key={GROUP_TAG},Values=",
            group_name,
            " ",
            *region,
            " --query Command.CommandId --output text) && while s=$(aws ssm list-commands"
            ' --command-id "$id" ',
            *region,
            " --query 'Commands[0].Status' --output text)"
            f' && {{ [ "$s" = Pending ] || [ "$s" = InProgress ]; }}; do sleep {POLL_S}; done;'
            ' aws ssm list-command-invocations --command-id "$id" --details ',
            *region,
            " --query 'CommandInvocations[].[InstanceId,CommandPlugins[0].Output]' --output text",
        ],
    )


class Outputs(Construct):
    """One CfnOutput per value, with the logical id pinned to its documented name."""

    def __init__(self, scope: Construct, construct_id: str, *, values: OutputValues) -> None:
        super().__init__(scope, construct_id)
        v = values
        self._out("HostGroupName", v.group_name, "Auto Scaling group of the enclave hosts")
        self._out("EnclaveCid", str(v.enclave_cid), "vsock CID of the enclave on every host")
        self._out("Region", Aws.REGION, "Region of the stack")
        self._out("CardsQueueUrl", v.cards_queue_url, "SQS queue the producer sends encrypted cards to")
        self._out("DeadLetterQueueUrl", v.dead_letter_queue_url, "Cards that can never be processed")
        self._out("ResultsQueueUrl", v.results_queue_url, "Answers from the enclave (last 4 digits)")
        self._out("KeyArn", v.key_arn, "KMS key for card numbers: the programs' KMS_KEY_ID (never an alias)")
        self._out("KeyAlias", v.key_alias, "Alias of the KMS key, for people: the programs refuse aliases")
        self._out(
            "MeasurementsParameter",
            v.measurements_parameter,
            "SSM parameter: PCR0-2 of the EIF CodeBuild built",
        )
        self._out("PinnedPcr0Parameter", v.pinned_pcr0_parameter, "SSM parameter with the pinned PCR0")
        self._out("PinnedPcr0", v.pinned_pcr0, "PCR0 of the EIF every host runs; the key policy accepts it")
        self._out(
            "PreviousPcr0",
            _previous_or_none(v.accepted_pcr0),
            "PCR0 of the image this build replaced, still accepted until retire_previous=true ('none': "
            "first build, or retired)",
        )
        self._out("EifKey", v.eif_location, "Object key of the pinned EIF in the stack's EIF bucket")
        self._out(
            "NitroCliVersion",
            v.nitro_cli_version,
            "nitro-cli that built the pinned EIF (its blobs are in PCR0): pin it with -c nitro_cli_version",
        )
        self._out(
            "AttestationMode",
            "DEBUG-ATTESTATION-OFF" if v.debug else "PINNED",
            "PINNED: only the built image decrypts; DEBUG-ATTESTATION-OFF: zeros accepted",
        )
        if v.debug:
            self._out("AttestationWarning", DEBUG_WARNING, "Read this before using the stack")
        self._out(
            "SsmStartSessionCommand",
            Fn.join(
                "",
                ["aws ssm start-session --region ", Aws.REGION, ' --target "', first_host(v.group_name), '"'],
            ),
            "Connect to the group's first InService host (Session Manager plugin required)",
        )
        self._out("DemoCommand", DEMO_COMMAND, "Run on a host: 10 cards through the enclave")
        self._out(
            "AttestCommand",
            ATTEST_COMMAND,
            "Run on a host: verify its enclave against the key policy's pin",
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
        self._out(
            "BootFailureAlarmName",
            v.boot_failure_alarm_name,
            "In alarm when a host's boot failed with no stack operation to tell (it serves no cards)",
        )
        self._out("SendCardsDocument", v.send_cards_document, "SSM document: send Count cards, print results")
        self._out("StatusDocument", v.status_document, "SSM document: status and doctor of every part")
        self._out(
            "SendCardsCommand",
            ssm_run_on_one_host(v.group_name, v.send_cards_document, "--parameters Count=10 "),
            "Paste in your shell: 10 cards through the enclaves via SSM on one host, then their results",
        )
        self._out(
            "StatusCommand",
            ssm_run_on_every_host(v.group_name, v.status_document),
            "Paste in your shell: status and doctor of every host via SSM",
        )

    def _out(self, name: str, value: str, description: str) -> CfnOutput:
        output = CfnOutput(self, name, value=value, description=description)
        output.override_logical_id(name)
        return output


def _previous_or_none(accepted_pcr0: str) -> str:
    """An output's value may not be empty and a condition cannot read a resource attribute, so: the second
    of "pcr0[,previous],none" split on commas, which is the previous PCR0 when there is one, else 'none'."""
    return Fn.select(1, Fn.split(",", Fn.join(",", [accepted_pcr0, NO_PREVIOUS])))

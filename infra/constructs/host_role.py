"""The enclave hosts' IAM role: the SSM Agent's channels (Session Manager, Run Command), queues, the pin's
SSM record, logs, the pinned EIF and the host bundle (one object version each: grant_read_eif) and (granted
by the group's `signals`, infra/constructs/enclave_host.py: CDK adds cloudformation:SignalResource on
AWS::StackId, this stack's ARN, and nothing else) the boot signal to this stack. Never any KMS action: the
key policy alone decides who may Encrypt, and Decrypt needs an attestation. No AWS managed policy:
AmazonSSMManagedInstanceCore would also grant ssm:GetParameter(s) and ssm:GetDocument on every resource of
the account."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.enclave_image import EnclaveImage
from infra.constructs.parameters import ParameterNames
from infra.constructs.queues import Queues

RECEIVE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")
# What the SSM Agent needs for Session Manager and Run Command, the only two ways in (docs/infra.md,
# "The hosts' role"): of AmazonSSMManagedInstanceCore's actions (AWS managed policy reference, v2) the agent's
# registration and association poll, and its two message channels; AWSCloud9SSMInstanceProfile, AWS's own
# Session Manager policy, is UpdateInstanceInformation plus the four ssmmessages actions. Left out: every
# read of parameters and documents, inventory, patching, compliance and association status writes.
SSM_AGENT_ACTIONS = ("ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations")
SESSION_CHANNEL_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)
RUN_COMMAND_ACTIONS = (
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
)


def host_role(
    scope: Construct,
    construct_id: str,
    *,
    queues: Queues,
    parameter_names: ParameterNames,
    image: EnclaveImage,
    log_group: logs.ILogGroup,
) -> iam.Role:
    role = iam.Role(
        scope,
        construct_id,
        assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
        description="nitro-enclave-demo hosts: SSM sessions, queues, the pinned EIF, the boot signal; KMS "
        "only via the key policy",
    )
    cards, results, dlq = queues.cards.queue_arn, queues.results.queue_arn, queues.dead_letter.queue_arn
    grants: list[tuple[str, list[str], list[str]]] = [
        ("RelayReadsCards", [*RECEIVE_ACTIONS, "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], [cards]),
        ("ProducerSendsCards", ["sqs:SendMessage"], [cards]),
        (
            "RelayPublishesResultsAndDeadLetters",
            ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
            [results, dlq],
        ),
        ("ProducerReadsResults", list(RECEIVE_ACTIONS), [results]),
        ("ReadPinnedMeasurement", ["ssm:GetParameter"], [_parameter_arn(scope, parameter_names.pinned_pcr0)]),
    ]
    for sid, actions, resources in grants:
        role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
    image.grant_read_eif(role)
    _allow_ssm_agent(role)
    _allow_operations(role, log_group)
    return role


def _allow_ssm_agent(role: iam.Role) -> None:
    role.add_to_policy(
        iam.PolicyStatement(
            sid="SsmAgentSessionsAndCommands",
            actions=[*SSM_AGENT_ACTIONS, *SESSION_CHANNEL_ACTIONS, *RUN_COMMAND_ACTIONS],
            resources=["*"],
        )
    )


def _allow_operations(role: iam.Role, log_group: logs.ILogGroup) -> None:
    """The CloudWatch agent writes to the stack's log group only. `nitro-demo status` reads the cards queue's
    age of oldest message: a CloudWatch metric, not a queue attribute; metric reads have no resource-level
    permissions."""
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ShipLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[log_group.log_group_arn],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="StatusReadsQueueAge", actions=["cloudwatch:GetMetricStatistics"], resources=["*"]
        )
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="Resource * only for cloudwatch:GetMetricStatistics (read-only, for `nitro-demo status`: "
            "CloudWatch metric reads support no resource-level permissions) and the SSM Agent's actions for "
            "Session Manager and Run Command: the ssmmessages and ec2messages actions define no resource "
            "types, and ssm:UpdateInstanceInformation and ssm:ListInstanceAssociations are granted on * as "
            "AmazonSSMManagedInstanceCore grants them. None of them reads a parameter, a document or a key.",
        )
    )


def _parameter_arn(scope: Construct, name: str) -> str:
    return Stack.of(scope).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))

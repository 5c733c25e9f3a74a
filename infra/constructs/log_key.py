"""The log groups' own KMS key: every log group of the stack is encrypted with it and named under one prefix,
and its key policy lets CloudWatch Logs use it for log groups under that prefix only.

A separate key from the card key (infra/constructs/key.py), whose policy stays exactly the one
`app.keypolicy.document` renders. The statement for CloudWatch Logs follows the CloudWatch Logs User Guide,
"Encrypt log data in CloudWatch Logs using AWS KMS": the regional service principal
logs.<region>.amazonaws.com, the Encrypt*/Decrypt*/ReEncrypt*/GenerateDataKey*/Describe* actions, and
`ArnLike kms:EncryptionContext:aws:logs:arn` (the ARN of the log group a request is for). Log group names
are given here, not generated, because that condition must name them before they exist: a key policy that
referred to the groups' generated names would make the key and the groups depend on each other.
An aspect (`_EncryptAndName`) sets the key and the name on every AWS::Logs::LogGroup in the stack, whoever
creates it, so no construct can add a log group that escapes either (tests/infra/test_log_encryption.py).
"""

from __future__ import annotations

import jsii
from aws_cdk import ArnFormat, Aspects, Aws, Duration, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

# The prefix of every log group name in the stack: /nitro-enclave-demo/<stack name>/<construct path>.
NAME_ROOT = "/nitro-enclave-demo"
LOGS_ACTIONS = ("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*")
CONTEXT_KEY = "kms:EncryptionContext:aws:logs:arn"
PENDING_WINDOW_DAYS = 7


def name_prefix() -> str:
    """`/nitro-enclave-demo/${AWS::StackName}/`: the stack's own, whatever name it is deployed under."""
    return f"{NAME_ROOT}/{Aws.STACK_NAME}/"


class LogKey(Construct):
    """The key; created in a stack, it encrypts and names every log group of that stack."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.group_arns = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{name_prefix()}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.key = kms.Key(
            self,
            "Key",
            description="nitro-enclave-demo: this stack's CloudWatch Logs log groups (not card numbers)",
            enable_key_rotation=True,
            pending_window=Duration.days(PENDING_WINDOW_DAYS),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsForThisStacksLogGroupsOnly",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=list(LOGS_ACTIONS),
                resources=["*"],
                conditions={"ArnLike": {CONTEXT_KEY: self.group_arns}},
            )
        )
        Aspects.of(stack).add(_EncryptAndName(self.key))


@jsii.implements(IAspect)
class _EncryptAndName:
    """Every CfnLogGroup: this key, and a name under the stack's prefix from its construct path."""

    def __init__(self, key: kms.IKey) -> None:
        self._key = key

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, logs.CfnLogGroup):
            return
        node.kms_key_id = self._key.key_arn
        # Always set: a name chosen elsewhere (the L2 LogGroup leaves an unresolved token) could fall outside
        # the prefix the key policy admits, and CloudWatch Logs could not use the key for that group.
        path = node.node.scope.node.path if node.node.scope else node.node.path
        node.log_group_name = name_prefix() + path.split("/", 1)[-1]

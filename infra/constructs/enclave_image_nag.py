"""cdk-nag acknowledgments for the enclave image build (infra/constructs/enclave_image.py), each reasoned.

Scoped to the EnclaveImage construct: none of them covers a finding anywhere else in the stack.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import Construct, IConstruct

# CDK's Provider framework (custom_resources.Provider) owns three Node.js functions and a Step Functions
# waiter; their roles and the state machine are CDK's, not ours to shape.
_FRAMEWORK = "CDK's custom-resource Provider framework"
_BASIC_ROLE = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


class NotAResource(TypeError):
    """A construct given for a finding id has no CloudFormation resource of its own."""


def acknowledge(scope: Construct, *, bucket: IConstruct, handlers: Mapping[str, IConstruct]) -> None:
    """Acknowledge the findings below on `scope` only. Finding ids name resources by logical id, so they
    are computed from the resources themselves (a renamed construct never silently un-acknowledges).
    `handlers` maps "OnEvent", "IsComplete", "FrameworkIsComplete", "FrameworkOnTimeout" to functions."""
    ids = {name: _logical_id(function) for name, function in handlers.items()}
    Validations.of(scope).acknowledge(*acknowledgments(_logical_id(bucket), ids))


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise NotAResource(construct.node.path)
    logical_id: str = Stack.of(construct).resolve(resource.logical_id)
    return logical_id


def _invokes(function: str, whose: str) -> Acknowledgment:
    return Acknowledgment(
        id=f"AwsSolutions-IAM5[Resource::<{function}.Arn>:*]",
        reason=f"{_FRAMEWORK} may invoke any version of {whose} (its ARN plus ':*'); the statement "
        "grants lambda:InvokeFunction on that one function and nothing else.",
    )


def acknowledgments(bucket: str, functions: Mapping[str, str]) -> tuple[Acknowledgment, ...]:
    return (
        Acknowledgment(
            id="AwsSolutions-S1",
            reason="EIF bucket: its only writer is the build role (s3:PutObject on eif/* only) and its "
            "readers are host roles limited to one object version each. Neither server access logs nor "
            "CloudTrail record those object reads and writes unless the account enables them (CloudTrail "
            "only with S3 data events, which this stack does not configure); a log bucket would need its "
            "own destroy story. Admitted in docs/threat-model.md.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/eif/*]",
            reason="The build names the EIF by its own SHA-256 only once it is built, so the build role may "
            "put objects under eif/ in the EIF bucket; it can read nothing there and write nowhere else.",
        ),
        Acknowledgment(
            id="AwsSolutions-CB4",
            reason="The project has no artifacts for a KMS key to encrypt: the EIF goes to the EIF bucket "
            "(SSE-S3, TLS only) and its measurements are public by design (key policy and outputs).",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM4[Policy::{_BASIC_ROLE}]",
            reason=f"{_FRAMEWORK} attaches this policy (CloudWatch Logs writes only) to its own functions; "
            "our two handlers have roles of their own with no managed policy.",
        ),
        _invokes(functions["OnEvent"], "our on-event handler"),
        _invokes(functions["IsComplete"], "our is-complete handler"),
        _invokes(functions["FrameworkIsComplete"], "the framework's is-complete function"),
        _invokes(functions["FrameworkOnTimeout"], "the framework's on-timeout function"),
        Acknowledgment(
            id="AwsSolutions-SF1",
            reason="The waiter only calls is_complete, which logs every poll in its own log group; state "
            "machine logging needs logs:CreateLogDelivery and others on '*' (no resource-level "
            "permissions), and its execution data holds CloudFormation's presigned response URL.",
        ),
        Acknowledgment(
            id="AwsSolutions-SF2",
            reason="The waiter is a two-state polling loop run once per deploy; X-Ray traces would show "
            "nothing that the handler's log and the CodeBuild build record do not.",
        ),
    )

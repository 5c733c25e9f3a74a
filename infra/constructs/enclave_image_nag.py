"""cdk-nag acknowledgments for the enclave image build (infra/constructs/enclave_image.py), each reasoned.

Scoped to the EnclaveImage construct: none of them covers a finding anywhere else in the stack.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from constructs import Construct, IConstruct


class NotAResource(TypeError):
    """A construct given for a finding id has no CloudFormation resource of its own."""


def acknowledge(scope: Construct, *, bucket: IConstruct) -> None:
    """Acknowledge the findings below on `scope` only. Finding ids name resources by logical id, so they
    are computed from the resources themselves (a renamed construct never silently un-acknowledges)."""
    Validations.of(scope).acknowledge(*acknowledgments(_logical_id(bucket)))


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    if not isinstance(resource, CfnElement):
        raise NotAResource(construct.node.path)
    logical_id: str = Stack.of(construct).resolve(resource.logical_id)
    return logical_id


def acknowledgments(bucket: str) -> tuple[Acknowledgment, ...]:
    return (
        Acknowledgment(
            id="AwsSolutions-S1",
            reason="EIF bucket: its only writer is the build role (s3:PutObject on eif/* and bundle/* "
            "only) and its readers are host roles limited to one object version of each. Neither server "
            "access logs nor CloudTrail record those object reads and writes unless the account enables them "
            "(CloudTrail only with S3 data events, which this stack does not configure); a log bucket would "
            "need its own destroy story. Admitted in docs/threat-model.md.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/eif/*]",
            reason="The build names the EIF by its own SHA-256 only once it is built, so the build role may "
            "put objects under eif/ in the EIF bucket; it can read nothing there and write nowhere else.",
        ),
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/bundle/*]",
            reason="The build names the host bundle by its own SHA-256 only once it is packed, so the build "
            "role may put objects under bundle/ in the EIF bucket; hosts read only the one version the build "
            "resource names and check its SHA-256 before unpacking it.",
        ),
        Acknowledgment(
            id="AwsSolutions-CB4",
            reason="The project has no artifacts for a KMS key to encrypt: the EIF goes to the EIF bucket "
            "(SSE-S3, TLS only) and its measurements are public by design (key policy and outputs).",
        ),
    )

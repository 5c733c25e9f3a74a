"""Stack-wide acknowledgments (cdk-nag AwsSolutions, CDK template validation), each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Stack, Validations

ACKNOWLEDGMENTS = (
    Acknowledgment(
        id="AwsSolutions-EC28",
        reason="Demo instance: basic 5-minute monitoring suffices and detailed monitoring costs extra.",
    ),
    Acknowledgment(
        id="AwsSolutions-EC29",
        reason="The demo must be removable by `cdk destroy`; termination protection would block that.",
    ),
)


def acknowledge_findings(stack: Stack) -> None:
    Validations.of(stack).acknowledge(*ACKNOWLEDGMENTS)

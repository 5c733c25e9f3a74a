"""Key: the KMS key for card numbers; its explicit key policy is the only place kms:Decrypt is allowed.

The statements come from `app.keypolicy.document` (local mode enforces the very same ones); this construct
only fills in the CloudFormation values: the account, the instance role's ARN and the pinned PCR0.
Decrypt is allowed to the instance role only with an attestation whose image measurement (PCR0) is the pinned
one, and explicitly denied to everyone otherwise, which no IAM policy or grant can override. Administrators
(the account, through IAM) get every action except using the key, but that includes kms:PutKeyPolicy: whoever
may call it can rewrite this policy, and so the pin. CloudFormation copies the pin into the policy at deploy
time; KMS never reads the SSM parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, CfnResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.keypolicy import document as keypolicy
from app.shared import deployment
from infra.settings import ZERO_PCR

PENDING_WINDOW_DAYS = 7


class EnclaveKey(Construct):
    """The key, its alias and the SSM parameter stating the pinned PCR0."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: str,
        role: iam.IRole,
        pcr0: str,
        debug: bool,
        encryption_context: Mapping[str, str],
        pinned_parameter_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        # The parameter records the pin; CloudFormation copies its value into the key policy at deploy time
        # (KMS never reads SSM), so `attest` compares against the key policy itself, not this copy.
        self.pinned_pcr0 = ssm.StringParameter(
            self,
            "PinnedPcr0",
            parameter_name=pinned_parameter_name,
            simple_name=False,
            string_value=pcr0,
            description="nitro-enclave-demo: the PCR0 the key policy lets decrypt",
        )
        pinned_resource = self.pinned_pcr0.node.default_child
        if isinstance(pinned_resource, CfnResource):
            # cfn-lint types WaitCondition.Data as an object; CloudFormation returns the signals' JSON text.
            pinned_resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E1017"]}})
        accepted_pcr0 = [self.pinned_pcr0.string_value]
        if debug:
            accepted_pcr0.append(ZERO_PCR)
        document = keypolicy.key_policy(
            account_root=keypolicy.account_root_arn(Aws.ACCOUNT_ID, Aws.PARTITION),
            role_arn=role.role_arn,
            accepted_pcr0=accepted_pcr0,
            encryption_context=encryption_context,
        )
        policy = iam.PolicyDocument.from_json(document)
        self.key = kms.Key(
            self,
            "Key",
            description=deployment.KEY_DESCRIPTION,
            enable_key_rotation=True,
            policy=policy,
            pending_window=Duration.days(PENDING_WINDOW_DAYS),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.alias = kms.Alias(self, "Alias", alias_name=alias, target_key=self.key)
        self.alias_name = alias

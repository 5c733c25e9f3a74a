"""Key: the KMS key for card numbers; its explicit key policy is the only place kms:Decrypt is allowed.

Decrypt is allowed to the instance role only with an attestation whose image measurement (PCR0) is the pinned
one, and explicitly denied to everyone otherwise, which no IAM policy or grant can override. Administrators
(the account, through IAM) get every action except using the key, but that includes kms:PutKeyPolicy: whoever
may call it can rewrite this policy, and so the pin. CloudFormation copies the pin into the policy at deploy
time; KMS never reads the SSM parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import CfnResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.shared import deployment
from infra.settings import ZERO_PCR

IMAGE_SHA384 = "kms:RecipientAttestation:ImageSha384"
PENDING_WINDOW_DAYS = 7
# Everything an administrator needs, and none of Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*.
ADMIN_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)
# The instance role may never change who can use the key, even if an IAM policy later tried to allow it.
ROLE_FORBIDDEN_ACTIONS = (
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:UpdateAlias",
    "kms:CreateAlias",
    "kms:DeleteAlias",
)


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
        # The parameter states the pin; CloudFormation copies its value into the key policy (Fn::GetAtt) at
        # deploy time, so after a deploy it shows what KMS enforces. KMS never reads it: editing it outside
        # CloudFormation changes nothing KMS enforces (and is drift).
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
        policy = key_policy(
            role_arn=role.role_arn, accepted_pcr0=accepted_pcr0, encryption_context=encryption_context
        )
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


def key_policy(
    *, role_arn: str, accepted_pcr0: list[str], encryption_context: Mapping[str, str]
) -> iam.PolicyDocument:
    """The whole key policy: administration without use, Encrypt for the role, attested Decrypt only."""
    context_condition = {f"kms:EncryptionContext:{k}": v for k, v in encryption_context.items()}
    role_principal = iam.ArnPrincipal(role_arn)
    return iam.PolicyDocument(
        statements=[
            iam.PolicyStatement(
                sid="KeyAdministrationWithoutUse",
                principals=[iam.AccountRootPrincipal()],
                actions=list(ADMIN_ACTIONS),
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="InstanceRoleEncrypts",
                principals=[role_principal],
                actions=["kms:Encrypt"],
                resources=["*"],
                conditions={"StringEquals": context_condition},
            ),
            iam.PolicyStatement(
                sid="InstanceRoleDescribes",
                principals=[role_principal],
                actions=["kms:DescribeKey"],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="AttestedEnclaveDecrypts",
                principals=[role_principal],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEqualsIgnoreCase": {IMAGE_SHA384: accepted_pcr0},
                    "StringEquals": context_condition,
                },
            ),
            iam.PolicyStatement(
                sid="DenyDecryptOutsideThePinnedEnclave",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:Decrypt", "kms:ReEncryptFrom"],
                resources=["*"],
                conditions={"StringNotEqualsIgnoreCase": {IMAGE_SHA384: accepted_pcr0}},
            ),
            iam.PolicyStatement(
                sid="DenyInstanceRoleKeyManagement",
                effect=iam.Effect.DENY,
                principals=[role_principal],
                actions=list(ROLE_FORBIDDEN_ACTIONS),
                resources=["*"],
            ),
        ]
    )

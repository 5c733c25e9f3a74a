"""Key: the KMS key for card numbers; its explicit key policy is the only place kms:Decrypt is allowed.

The statements come from `app.keypolicy.document` (local mode enforces the very same ones); this construct
only fills in the CloudFormation values: the account, the host role's ARN and the accepted PCR0 values, which
come from the enclave image build's custom resource (CodeBuild's own API), never from a host.
Decrypt is allowed to the host role only with an attestation whose image measurement (PCR0) is an accepted
one, and explicitly denied to everyone otherwise, which no IAM policy or grant can override. Administrators
(the account, through IAM) get every action except using the key, but that includes kms:PutKeyPolicy: whoever
may call it can rewrite this policy, and so the pin. CloudFormation copies the pin into the policy at deploy
time; KMS never reads the SSM parameter.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.keypolicy import document as keypolicy
from app.shared import deployment
from infra.constructs.enclave_image import EnclaveImage
from infra.constructs.parameters import ParameterNames
from infra.settings import ZERO_PCR

PENDING_WINDOW_DAYS = 7


class EnclaveKey(Construct):
    """The key, its alias and the SSM parameters recording the pin and the build's measurements."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        alias: str,
        role: iam.IRole,
        image: EnclaveImage,
        debug: bool,
        encryption_context: Mapping[str, str],
        parameter_names: ParameterNames,
    ) -> None:
        super().__init__(scope, construct_id)
        # The parameter records the build's PCR0, the one every host runs; CloudFormation copies the accepted
        # values into the key policy at deploy time (KMS never reads SSM), so `attest` reads the policy.
        self.pinned_pcr0 = ssm.StringParameter(
            self,
            "PinnedPcr0",
            parameter_name=parameter_names.pinned_pcr0,
            simple_name=False,
            string_value=image.pcr0,
            description="nitro-enclave-demo: PCR0 of the EIF CodeBuild built, which every host runs",
        )
        self.measurements = _measurements_parameter(self, parameter_names.measurements, image)
        document = keypolicy.key_policy(
            account_root=keypolicy.account_root_arn(Aws.ACCOUNT_ID, Aws.PARTITION),
            role_arn=role.role_arn,
            accepted_pcr0=accepted_pcr0(image, debug=debug),
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


def accepted_pcr0(image: EnclaveImage, *, debug: bool) -> list[str]:
    """`Fn::Split(",", <build>.AcceptedPcr0)`: the build's PCR0 and, during a roll, the one it replaces
    (never more than these two, never anything a host wrote). Debug mode appends the all-zero PCR inside the
    same split, so the policy stays one list whatever the build returns."""
    joined = Fn.join(",", [image.accepted_pcr0, ZERO_PCR]) if debug else image.accepted_pcr0
    return Fn.split(",", joined)


def _measurements_parameter(scope: Construct, name: str, image: EnclaveImage) -> ssm.StringParameter:
    """The build's PCR0, PCR1 and PCR2, and the nitro-cli version that built it (`make measure` needs the
    same one), as JSON. CloudFormation writes it from CodeBuild's own answer, and only CloudFormation: no
    host may write SSM parameters."""
    value = Fn.join(
        "",
        [
            '{"PCR0":"',
            image.pcr0,
            '","PCR1":"',
            image.pcr1,
            '","PCR2":"',
            image.pcr2,
            '","NitroCliVersion":"',
            image.nitro_cli_version,
            '"}',
        ],
    )
    return ssm.StringParameter(
        scope,
        "Measurements",
        parameter_name=name,
        simple_name=False,
        string_value=value,
        description="nitro-enclave-demo: PCR0-2 of the EIF CodeBuild built (from the build's own API)",
    )

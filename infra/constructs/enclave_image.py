"""Enclave image: the EIF built once, in AWS CodeBuild, from the code asset; its measurements come from
CodeBuild's own API (the build's exported variables), never from anything a host can write.

INTERFACE SKELETON (lead, issue 9): the attributes below are the contract the hosts, the key and the outputs
build on. The build pipeline (bucket, CodeBuild project, buildspec, Provider with on-event and is-complete
handlers) replaces the body; the attribute names and meanings stay.

Attributes (CloudFormation tokens, strings):
- `bucket`: the stack-owned EIF bucket (versioned, encrypted, public access blocked, TLS only, emptied on
  destroy);
- `pcr0`, `pcr1`, `pcr2`: lower-case hex (96 characters) of the EIF the build produced;
- `eif_key`: the EIF's content-addressed object key in `bucket` (`eif/<sha256 of the EIF>.eif`);
- `eif_version`: the S3 version id of that object;
- `previous_pcr0`: the PCR0 of the image this build replaces, or "" (first build, or `retire_previous`);
- `accepted_pcr0`: `pcr0`, then `previous_pcr0` when there is one, comma-separated: what the key policy's
  `kms:RecipientAttestation:ImageSha384` accepts (split with Fn::Split; never more than two values).
`grant_read_eif(role)` lets a host role read exactly that object version's key and nothing else in the bucket.
"""

from __future__ import annotations

from aws_cdk import CustomResource
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

# The custom resource's attribute names (its handlers' `Data` keys).
ATTRIBUTES = ("Pcr0", "Pcr1", "Pcr2", "EifKey", "EifVersion", "PreviousPcr0", "AcceptedPcr0")


class EnclaveImage(Construct):
    """The EIF bucket, the CodeBuild project and the custom resource that runs one build per code change."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: s3_assets.Asset,
        expected_pcr0: str,
        retire_previous: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket: s3.IBucket = s3.Bucket(self, "Eifs")  # skeleton: the pipeline sets every property
        self.build = CustomResource(
            self,
            "Build",
            service_token="arn:aws:lambda:skeleton",  # noqa: S106 - skeleton: the Provider's service token
            resource_type="Custom::EnclaveImageBuild",
            properties={
                "SourceHash": code.asset_hash,
                "ExpectedPcr0": expected_pcr0,
                "RetirePrevious": "true" if retire_previous else "false",
            },
        )
        self.pcr0 = self.build.get_att_string("Pcr0")
        self.pcr1 = self.build.get_att_string("Pcr1")
        self.pcr2 = self.build.get_att_string("Pcr2")
        self.eif_key = self.build.get_att_string("EifKey")
        self.eif_version = self.build.get_att_string("EifVersion")
        self.previous_pcr0 = self.build.get_att_string("PreviousPcr0")
        self.accepted_pcr0 = self.build.get_att_string("AcceptedPcr0")

    def grant_read_eif(self, role: iam.IRole) -> None:
        """s3:GetObject and s3:GetObjectVersion on the built EIF's key only."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="FetchPinnedEif",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(self.eif_key)],
            )
        )

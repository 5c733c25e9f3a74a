"""Enclave image: the EIF built once, in AWS CodeBuild, from the code asset; its measurements come from
CodeBuild's own API (the build's exported variables), never from anything a host can write.

Owns the EIF bucket, the CodeBuild project (buildspec: infra/build/buildspec.yml) and the custom resource
whose one Lambda function (infra/build/handler/custom_resource.py) starts one build per code change, waits
for it and answers CloudFormation itself: the request's presigned ResponseURL reaches no other resource,
state machine, log or build. Hosts, key and
outputs build on these attributes (CloudFormation tokens, strings):
- `bucket`: the stack-owned EIF bucket (versioned, encrypted, public access blocked, TLS only, emptied on
  destroy);
- `pcr0`, `pcr1`, `pcr2`: lower-case hex (96 characters) of the EIF the build produced;
- `eif_key`: the EIF's content-addressed object key in `bucket` (`eif/<sha256 of the EIF>.eif`);
- `eif_version`: the S3 version id of that object;
- `previous_pcr0`: the PCR0 of the image this build replaces, or "" (first build, or `retire_previous`);
- `accepted_pcr0`: `pcr0`, then `previous_pcr0` when there is one, comma-separated: what the key policy's
  `kms:RecipientAttestation:ImageSha384` accepts (split with Fn::Split; never more than two values);
- `nitro_cli_version`: X.Y.Z of the nitro-cli that built the EIF (its kernel, init and nsm.ko are in PCR0);
- `bundle_key`, `bundle_version`, `bundle_sha256`: the host bundle the same build wrote beside the EIF (what
  a host installs: `bundle/<sha256>.tar.gz` of the build's source tree), its S3 version id and its SHA-256.
`grant_read_eif(role)` lets a host role read exactly those two object versions and nothing else in the bucket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from aws_cdk import CfnResource, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.build.handler import enclave_build, messages
from infra.constructs import enclave_image_nag

BUILD_DIR = Path(__file__).resolve().parent.parent / "build"
BUILDSPEC = BUILD_DIR / "buildspec.yml"
HANDLER_DIR = BUILD_DIR / "handler"
# The function's asset is BUILD_DIR with only the handler package in it, so its modules import each other as
# the package `handler` (Lambda puts the asset's root on sys.path).
HANDLER = "handler.custom_resource.handler"
HANDLER_ASSET_EXCLUDE = ["*", "!handler", "!handler/*.py"]
RESOURCE_TYPE = "Custom::EnclaveImageBuild"
# The construct id of CDK's stack-wide provider for a bucket's `auto_delete_objects` (aws-s3 bucket.ts).
AUTO_DELETE_PROVIDER = "Custom::S3AutoDeleteObjectsCustomResourceProvider"
# The custom resource's attribute names (its handlers' `Data` keys).
ATTRIBUTES = (
    "Pcr0",
    "Pcr1",
    "Pcr2",
    "EifKey",
    "EifVersion",
    "PreviousPcr0",
    "AcceptedPcr0",
    "NitroCliVersion",
    "BundleKey",
    "BundleVersion",
    "BundleSha256",
)
EIF_PREFIX = "eif/"
BUNDLE_PREFIX = "bundle/"
# The project's placeholders for what StartBuild always overrides (never "": CodeBuild has refused empty
# values); the handler treats NO_PREVIOUS as "replaces no build".
NO_PREVIOUS = enclave_build.NO_PREVIOUS
NO_SOURCE = "none"

# One build: provisioning, dnf install of the Nitro CLI, a Docker build, nitro-cli build-enclave, one upload:
# a few minutes (docs/infra.md, "The custom resource"). The handler waits for it inside one invocation of at
# most Lambda's 15 minutes, so the build must end well before: CodeBuild's own TIMED_OUT (with its phase and
# log link) at BUILD_TIMEOUT, and a build still queued or running when the handler has STOP_MARGIN_S left is
# stopped by the handler, which fails the resource saying so.
BUILD_TIMEOUT = Duration.minutes(12)
QUEUED_TIMEOUT = Duration.minutes(5)  # CodeBuild's minimum
HANDLER_TIMEOUT = Duration.minutes(15)  # Lambda's maximum
# CloudFormation's own wait for the answer (1-3600 s, default 3600): a handler that died without answering
# fails the deploy after its 15 minutes plus Lambda's invocation queue, not after an hour.
SERVICE_TIMEOUT_S = 1020
# How long Lambda keeps CloudFormation's asynchronous request queued before dropping it (60-21600 s, default
# 6 h; Lambda API reference, FunctionEventInvokeConfig): well under SERVICE_TIMEOUT_S, so no request that
# waited in the queue (or a duplicate of one) starts a build after CloudFormation stopped waiting, or after
# the 5 minutes StartBuild's idempotency token is remembered.
MAX_EVENT_AGE_S = 300
# The account quota a refused StartBuild counts against, by the project's compute type (CodeBuild quotas).
BUILD_COMPUTE = codebuild.ComputeType.MEDIUM
QUOTA_NAME = "Concurrently running builds for Linux/Medium environment"


def load_buildspec(path: Path = BUILDSPEC) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(path.read_text())
    return spec


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
        nitro_cli_version: str = "",
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_WEEK,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket: s3.IBucket = self._bucket()
        self._auto_delete_logs(log_retention)
        self.project = self._project(code, log_retention, nitro_cli_version)
        self.handler = self._handler(log_retention)
        self.build = self._custom_resource(code, expected_pcr0, retire_previous)
        self.pcr0 = self.build.get_att_string("Pcr0")
        self.pcr1 = self.build.get_att_string("Pcr1")
        self.pcr2 = self.build.get_att_string("Pcr2")
        self.eif_key = self.build.get_att_string("EifKey")
        self.eif_version = self.build.get_att_string("EifVersion")
        self.previous_pcr0 = self.build.get_att_string("PreviousPcr0")
        self.accepted_pcr0 = self.build.get_att_string("AcceptedPcr0")
        self.nitro_cli_version = self.build.get_att_string("NitroCliVersion")
        self.bundle_key = self.build.get_att_string("BundleKey")
        self.bundle_version = self.build.get_att_string("BundleVersion")
        self.bundle_sha256 = self.build.get_att_string("BundleSha256")
        enclave_image_nag.acknowledge(self, bucket=self.bucket)

    def grant_read_eif(self, role: iam.IRole) -> None:
        """s3:GetObjectVersion on the built EIF's key and on the host bundle's key, each for the build's
        version only (`s3:versionid`, S3's condition key for it, service authorization reference). A
        GetObject that names a version id needs s3:GetObjectVersion and not s3:GetObject (S3 API reference,
        GetObject), so the host, which always passes --version-id, may read exactly these two object
        versions and nothing else."""
        for sid, key, version in (
            ("FetchPinnedEif", self.eif_key, self.eif_version),
            ("FetchHostBundle", self.bundle_key, self.bundle_version),
        ):
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    sid=sid,
                    actions=["s3:GetObjectVersion"],
                    resources=[self.bucket.arn_for_objects(key)],
                    conditions={"StringEquals": {"s3:versionid": version}},
                )
            )

    def _custom_resource(
        self, code: s3_assets.Asset, expected_pcr0: str, retire_previous: bool
    ) -> CustomResource:
        build = CustomResource(
            self,
            "Build",
            service_token=self.handler.function_arn,
            service_timeout=Duration.seconds(SERVICE_TIMEOUT_S),
            resource_type=RESOURCE_TYPE,
            properties={
                "SourceHash": code.asset_hash,
                "SourceLocation": f"{code.s3_bucket_name}/{code.s3_object_key}",
                "ProjectName": self.project.project_name,
                "ExpectedPcr0": expected_pcr0,
                "RetirePrevious": "true" if retire_previous else "false",
            },
        )
        # The build must not start before its role may read the asset and put the EIF.
        build.node.add_dependency(self.build_role)
        return build

    def _bucket(self) -> s3.Bucket:
        # No server access logs: the only writer is this stack's build role and the only readers are the
        # hosts' roles, each limited to one key by IAM. Object reads and writes are recorded only where the
        # account enables CloudTrail S3 data events (see the AwsSolutions-S1 acknowledgment).
        return s3.Bucket(
            self,
            "Eifs",
            versioned=True,  # the hosts pin a version id; a rebuild never changes what they run
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # CDK's auto-delete handler empties every version and delete marker before the bucket goes
            # (aws-cdk-lib 2.275.0 custom-resource-handlers/dist/aws-s3/auto-delete-objects-handler: it pages
            # ListObjectVersions and calls DeleteObjects with each Key and VersionId, after denying new
            # PutObject in the bucket policy), so `cdk destroy` leaves nothing behind.
            auto_delete_objects=True,
            removal_policy=RemovalPolicy.DESTROY,
        )

    def _auto_delete_logs(self, log_retention: logs.RetentionDays) -> None:
        """CDK's bucket auto-delete handler (a stack-wide singleton, CustomResourceProvider, with no log
        settings of its own) would log to /aws/lambda/<name>, a group Lambda creates on its first run: not
        encrypted with the log key, no retention, left behind by destroy. Here it logs to a group of this
        stack instead (the log key and the stack's prefix come from LogKey's aspect), set through the
        function's LoggingConfig (AWS::Lambda::Function); its Ref makes the function wait for the group, so
        Lambda never creates one of its own. The provider's role (AWSLambdaBasicExecutionRole) may write to
        any group, this one included."""
        provider = Stack.of(self).node.try_find_child(AUTO_DELETE_PROVIDER)
        if provider is None:
            return
        function = provider.node.find_child("Handler")
        if not isinstance(function, CfnResource):
            raise TypeError(f"{AUTO_DELETE_PROVIDER}/Handler is not a CloudFormation resource")
        group = logs.LogGroup(
            self, "AutoDeleteLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        function.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
        function.add_property_override("LoggingConfig.LogFormat", "Text")

    def _project(
        self, code: s3_assets.Asset, log_retention: logs.RetentionDays, nitro_cli_version: str
    ) -> codebuild.Project:
        log_group = logs.LogGroup(
            self, "BuildLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        role = self.build_role = iam.Role(
            self,
            "BuildRole",
            assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com"),
            description="The enclave image build: reads the code asset, writes eif/* and bundle/* in the "
            "EIF bucket",
        )
        project = codebuild.Project(
            self,
            "Project",
            description="Builds the enclave image (EIF) once per code change and records PCR0-2",
            source=codebuild.Source.s3(bucket=code.bucket, path=code.s3_object_key),
            build_spec=codebuild.BuildSpec.from_object_to_yaml(load_buildspec()),
            environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.AMAZON_LINUX_2023_5,
                compute_type=BUILD_COMPUTE,
                privileged=True,  # Docker inside the build container (nitro-cli build-enclave needs it)
            ),
            environment_variables=self._environment(nitro_cli_version),
            # CDK's own grants (GetObject*/List* on the whole asset bucket, /aws/codebuild/* logs, report
            # groups) are dropped: the role gets exactly the statements below.
            role=role.without_policy_updates(),
            timeout=BUILD_TIMEOUT,
            queued_timeout=QUEUED_TIMEOUT,
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)
            ),
        )
        for statement in self._build_statements(code):
            role.add_to_principal_policy(statement)
        log_group.grant_write(role)
        return project

    def _environment(self, nitro_cli_version: str) -> dict[str, codebuild.BuildEnvironmentVariable]:
        """No value is ever empty (CodeBuild has refused empty values): PREVIOUS_BUILD_ID and SOURCE_HASH
        are always defined, so the buildspec can export them, and StartBuild overrides both per build;
        NITRO_CLI_VERSION is there only when pinned (unpinned: whatever the AL2023 repository serves)."""
        variables = {
            "EIF_BUCKET": codebuild.BuildEnvironmentVariable(value=self.bucket.bucket_name),
            "PREVIOUS_BUILD_ID": codebuild.BuildEnvironmentVariable(value=NO_PREVIOUS),
            "SOURCE_HASH": codebuild.BuildEnvironmentVariable(value=NO_SOURCE),
        }
        if nitro_cli_version:
            variables["NITRO_CLI_VERSION"] = codebuild.BuildEnvironmentVariable(value=nitro_cli_version)
        return variables

    def _build_statements(self, code: s3_assets.Asset) -> list[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                sid="ReadCodeAsset",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[code.bucket.arn_for_objects(code.s3_object_key)],
            ),
            # The bucket-level reads CodeBuild's service-role policy lists for an S3 source.
            iam.PolicyStatement(
                sid="LocateCodeAssetBucket",
                actions=["s3:GetBucketAcl", "s3:GetBucketLocation"],
                resources=[code.bucket.bucket_arn],
            ),
            iam.PolicyStatement(
                sid="PutEifAndHostBundle",
                actions=["s3:PutObject"],
                resources=[
                    self.bucket.arn_for_objects(f"{EIF_PREFIX}*"),
                    self.bucket.arn_for_objects(f"{BUNDLE_PREFIX}*"),
                ],
            ),
        ]

    def _handler(self, log_retention: logs.RetentionDays) -> lambda_.Function:
        """The custom resource's one function. No dead-letter queue, no destinations and no retries of a
        failed invocation: CloudFormation's request (with its ResponseURL) must land nowhere but here."""
        log_group = logs.LogGroup(
            self, "HandlerLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(self, "HandlerRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        log_group.grant_write(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"],
                resources=[self.project.project_arn],
            )
        )
        return lambda_.Function(
            self,
            "Handler",
            runtime=lambda_.Runtime.PYTHON_3_14,
            handler=HANDLER,
            code=lambda_.Code.from_asset(str(BUILD_DIR), exclude=HANDLER_ASSET_EXCLUDE),
            timeout=HANDLER_TIMEOUT,
            retry_attempts=0,
            max_event_age=Duration.seconds(MAX_EVENT_AGE_S),
            environment={messages.QUOTA_NAME_ENV: QUOTA_NAME},
            role=role,
            log_group=log_group,
        )

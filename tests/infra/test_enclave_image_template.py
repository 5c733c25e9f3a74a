"""The EnclaveImage construct synthesized in a stack of its own (cdk-nag on): the EIF bucket, the CodeBuild
project and its role, the custom resource and its handlers, and the host-side grant."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import App, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from infra.build.handler import custom_resource, messages
from infra.constants import CODE_ASSET_FILES, REPO_ROOT
from infra.constructs.code_asset import code_asset
from infra.constructs.enclave_image import (
    BUILD_TIMEOUT,
    BUILDSPEC,
    HANDLER,
    HANDLER_DIR,
    HANDLER_TIMEOUT,
    MAX_EVENT_AGE_S,
    QUEUED_TIMEOUT,
    RESOURCE_TYPE,
    SERVICE_TIMEOUT_S,
    EnclaveImage,
)
from infra.constructs.enclave_image_nag import acknowledgments
from tests.infra.cfn import Json, Statement, only, resources, statements

EXPECTED = "ab" * 48
CFN_LINT = Path(sys.executable).with_name("cfn-lint")


@dataclass(frozen=True)
class Built:
    template: Json
    resolve: Callable[[Any], Any]
    outdir: Path
    hash: str


def synth(
    outdir: Path, *, expected_pcr0: str = "", retire_previous: bool = False, nitro_cli_version: str = ""
) -> Built:
    app = App(outdir=str(outdir))
    stack = Stack(app, "ImageTest")
    code = code_asset(stack, "Code")
    image = EnclaveImage(
        stack,
        "EnclaveImage",
        code=code,
        expected_pcr0=expected_pcr0,
        retire_previous=retire_previous,
        nitro_cli_version=nitro_cli_version,
    )
    host = iam.Role(stack, "HostRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    image.grant_read_eif(host)
    attributes = {name: getattr(image, name) for name in ("pcr0", "pcr1", "pcr2", "eif_key", "eif_version")}
    attributes |= {"previous_pcr0": image.previous_pcr0, "accepted_pcr0": image.accepted_pcr0}
    attributes |= {"nitro_cli_version": image.nitro_cli_version}
    attributes |= {name: getattr(image, name) for name in ("bundle_key", "bundle_version", "bundle_sha256")}
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    template: Json = assembly.get_stack_artifact(stack.artifact_id).template
    template["Attributes"] = {k: stack.resolve(v) for k, v in attributes.items()}
    return Built(template=template, resolve=stack.resolve, outdir=outdir, hash=code.asset_hash)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return synth(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def template(built: Built) -> Json:
    return built.template


def logical_id(template: Json, type_name: str, contains: str = "") -> str:
    found = [k for k in resources(template, type_name) if contains in k]
    assert len(found) == 1, (type_name, contains, found)
    return found[0]


def role_statements(template: Json, role: str) -> list[Statement]:
    """Every statement of the policies attached to `role`, plus its inline and managed policies' names."""
    attached = {
        k
        for k, r in resources(template, "AWS::IAM::Policy").items()
        if {"Ref": role} in r["Properties"]["Roles"]
    }
    return [s for s in statements(template) if s.where.split(" ")[0] in attached]


def raw_statements(template: Json, role: str) -> list[Json]:
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def build_role(template: Json) -> str:
    _, project = only(template, "AWS::CodeBuild::Project")
    arn = project["Properties"]["ServiceRole"]
    role: str = arn["Fn::GetAtt"][0]
    return role


def test_the_bucket_is_versioned_encrypted_and_private(template: Json) -> None:
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    props = template["Resources"][bucket_id]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }


def test_the_bucket_is_emptied_and_removed_on_destroy(template: Json) -> None:
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    assert template["Resources"][bucket_id]["DeletionPolicy"] == "Delete"
    tags = {t["Key"]: t["Value"] for t in template["Resources"][bucket_id]["Properties"]["Tags"]}
    assert tags["aws-cdk:auto-delete-objects"] == "true"  # the handler cleans only tagged buckets
    _, cleaner = only(template, "Custom::S3AutoDeleteObjects")
    assert cleaner["Properties"]["BucketName"] == {"Ref": bucket_id}


def test_the_bucket_policy_refuses_every_request_without_tls(template: Json) -> None:
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    _, policy = only(template, "AWS::S3::BucketPolicy")
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    tls = [s for s in denies if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]
    assert len(tls) == 1
    assert tls[0]["Action"] == "s3:*"
    assert tls[0]["Principal"] == {"AWS": "*"}
    assert tls[0]["Resource"] == [
        {"Fn::GetAtt": [bucket_id, "Arn"]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/*"]]},
    ]


def test_the_project_builds_privileged_on_the_al2023_standard_image(template: Json) -> None:
    _, project = only(template, "AWS::CodeBuild::Project")
    environment = project["Properties"]["Environment"]
    assert environment["Image"] == "aws/codebuild/amazonlinux-x86_64-standard:5.0"
    assert environment["Type"] == "LINUX_CONTAINER"
    assert environment["PrivilegedMode"] is True
    assert environment["ComputeType"] == "BUILD_GENERAL1_MEDIUM"  # the quota the handler names
    assert project["Properties"]["Artifacts"] == {"Type": "NO_ARTIFACTS"}


def test_the_project_reads_the_code_asset_and_knows_the_bucket(built: Built) -> None:
    _, project = only(built.template, "AWS::CodeBuild::Project")
    source = project["Properties"]["Source"]
    assert source["Type"] == "S3"
    assert f"/{built.hash}.zip" in json.dumps(source["Location"])
    variables = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
    # No empty value (CodeBuild has refused them); StartBuild overrides the two placeholders per build, and
    # NITRO_CLI_VERSION is absent while unpinned.
    assert variables == {
        "EIF_BUCKET": {"Ref": logical_id(built.template, "AWS::S3::Bucket")},
        "PREVIOUS_BUILD_ID": "none",
        "SOURCE_HASH": "none",
    }


def test_a_pinned_nitro_cli_version_reaches_the_project(tmp_path: Path) -> None:
    pinned = synth(tmp_path, nitro_cli_version="1.3.1")
    _, project = only(pinned.template, "AWS::CodeBuild::Project")
    variables = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
    assert variables["NITRO_CLI_VERSION"] == "1.3.1"


def test_the_code_asset_holds_what_the_image_is_built_from(built: Built) -> None:
    # CodeBuild builds from the asset, `make measure` from a checkout: both must see the same enclave files.
    manifest = json.loads((built.outdir / "ImageTest.assets.json").read_text())
    root = built.outdir / manifest["files"][built.hash]["source"]["path"]
    shipped = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    trees = [REPO_ROOT / "app/enclave", REPO_ROOT / "app/shared"]
    enclave = {p.relative_to(REPO_ROOT).as_posix() for t in trees for p in t.rglob("*") if p.is_file()}
    enclave = {p for p in enclave if "__pycache__" not in p and not p.endswith(".pyc")}
    assert {"app/enclave/Dockerfile", "app/enclave/requirements.txt", "app/__init__.py"} <= shipped
    assert enclave <= shipped
    assert {"infra/build/build-eif.sh", "infra/build/context.py"} <= set(CODE_ASSET_FILES)


def test_the_project_carries_the_buildspec_file(template: Json) -> None:
    _, project = only(template, "AWS::CodeBuild::Project")
    assert yaml.safe_load(project["Properties"]["Source"]["BuildSpec"]) == yaml.safe_load(
        BUILDSPEC.read_text()
    )


def test_the_build_role_reads_the_asset_and_puts_eifs_and_bundles_and_nothing_else(built: Built) -> None:
    template = built.template
    role = build_role(template)
    assumed = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in assumed] == [{"Service": "codebuild.amazonaws.com"}]
    assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    granted = {(s.sid, s.actions) for s in role_statements(template, role)}
    assert granted == {
        ("ReadCodeAsset", ("s3:GetObject", "s3:GetObjectVersion")),
        ("LocateCodeAssetBucket", ("s3:GetBucketAcl", "s3:GetBucketLocation")),
        ("PutEifAndHostBundle", ("s3:PutObject",)),
        ("", ("logs:CreateLogStream", "logs:PutLogEvents")),
    }
    raw = {s.get("Sid", ""): s["Resource"] for s in raw_statements(template, role)}
    assert f"/{built.hash}.zip" in json.dumps(raw["ReadCodeAsset"])
    bucket_id = logical_id(template, "AWS::S3::Bucket")
    assert raw["PutEifAndHostBundle"] == [
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/eif/*"]]},
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/bundle/*"]]},
    ]
    assert raw[""] == {"Fn::GetAtt": [logical_id(template, "AWS::Logs::LogGroup", "BuildLogs"), "Arn"]}


def test_the_build_waits_for_its_roles_policy(template: Json) -> None:
    role = build_role(template)
    (policy,) = [
        k
        for k, p in resources(template, "AWS::IAM::Policy").items()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    assert policy in template["Resources"][logical_id(template, RESOURCE_TYPE)]["DependsOn"]


def test_the_custom_resource_carries_the_contracts_properties(built: Built) -> None:
    _, resource = only(built.template, RESOURCE_TYPE)
    props = resource["Properties"]
    assert props["SourceHash"] == built.hash
    assert props["ExpectedPcr0"] == ""
    assert props["RetirePrevious"] == "false"
    assert props["ProjectName"] == {"Ref": logical_id(built.template, "AWS::CodeBuild::Project")}
    assert f"/{built.hash}.zip" in json.dumps(props["SourceLocation"])


def test_the_knobs_reach_the_custom_resource(tmp_path: Path) -> None:
    _, resource = only(synth(tmp_path, expected_pcr0=EXPECTED, retire_previous=True).template, RESOURCE_TYPE)
    assert (resource["Properties"]["ExpectedPcr0"], resource["Properties"]["RetirePrevious"]) == (
        EXPECTED,
        "true",
    )


def test_the_attributes_are_the_custom_resources(template: Json) -> None:
    build_id = logical_id(template, RESOURCE_TYPE)
    names = {"pcr0": "Pcr0", "pcr1": "Pcr1", "pcr2": "Pcr2", "eif_key": "EifKey", "eif_version": "EifVersion"}
    names |= {"previous_pcr0": "PreviousPcr0", "accepted_pcr0": "AcceptedPcr0"}
    names |= {"nitro_cli_version": "NitroCliVersion"}
    names |= {"bundle_key": "BundleKey", "bundle_version": "BundleVersion", "bundle_sha256": "BundleSha256"}
    assert template["Attributes"] == {k: {"Fn::GetAtt": [build_id, v]} for k, v in names.items()}


def _handler(template: Json) -> tuple[str, Json]:
    functions = resources(template, "AWS::Lambda::Function")
    ours = {k: f for k, f in functions.items() if f["Properties"].get("Handler") == HANDLER}
    assert len(ours) == 1, ours
    return next(iter(ours.items()))


def test_the_custom_resource_is_served_by_one_python_function_with_the_least_codebuild_access(
    template: Json,
) -> None:
    function_id, function = _handler(template)
    _, resource = only(template, RESOURCE_TYPE)
    assert resource["Properties"]["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert function["Properties"]["Runtime"] == "python3.14"
    module, _, name = HANDLER.rpartition(".")
    assert module == "handler.custom_resource"
    assert callable(getattr(custom_resource, name))
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    codebuild = {a for s in role_statements(template, role) for a in s.actions if a.startswith("codebuild:")}
    assert codebuild == {"codebuild:StartBuild", "codebuild:StopBuild", "codebuild:BatchGetBuilds"}
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables == {messages.QUOTA_NAME_ENV: "Concurrently running builds for Linux/Medium environment"}


def test_the_function_can_touch_no_eif_so_a_cleanup_delete_leaves_every_image(template: Json) -> None:
    # The cleanup Delete of a replaced build (the old one after a successful update, the new one after a
    # failed update) reaches the function alone: with no S3 action it cannot remove the EIF version the
    # hosts that stay download. The stack's own auto-delete empties the bucket on destroy only.
    _, function = _handler(template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    assert [a for s in role_statements(template, role) for a in s.actions if a.startswith("s3:")] == []


def test_the_response_url_has_no_path_to_a_readable_place(template: Json) -> None:
    # The request (with its presigned ResponseURL) goes to the function and nowhere else: no state machine
    # or other function that could be handed it, no dead-letter queue, no destination, no retried
    # invocation, no tracing; the function's environment is fixed in the template (no request values).
    for kind in ("AWS::StepFunctions::StateMachine", "AWS::Lambda::EventSourceMapping", "AWS::SNS::Topic"):
        assert not resources(template, kind), kind
    function_id, function = _handler(template)
    assert {"DeadLetterConfig", "TracingConfig"}.isdisjoint(function["Properties"])
    (config,) = resources(template, "AWS::Lambda::EventInvokeConfig").values()
    assert config["Properties"]["FunctionName"] == {"Ref": function_id}
    assert config["Properties"]["MaximumRetryAttempts"] == 0
    assert "DestinationConfig" not in config["Properties"]
    # A request queued (or delivered twice) longer than StartBuild's 5-minute idempotency token, or than
    # CloudFormation waits, is dropped, never run late (Lambda's range: 60-21600 s, default 6 h).
    assert config["Properties"]["MaximumEventAgeInSeconds"] == MAX_EVENT_AGE_S
    assert 60 <= MAX_EVENT_AGE_S <= 300 < SERVICE_TIMEOUT_S
    # No resource policy or function URL lets anyone else invoke it (CloudFormation invokes it with the
    # deployer's credentials).
    for kind in ("AWS::Lambda::Permission", "AWS::Lambda::Url"):
        for logical, other in resources(template, kind).items():
            names = json.dumps(other["Properties"])
            assert function_id not in names, (kind, logical)
    tokens = {json.dumps(r["Properties"].get("ServiceToken")) for r in template["Resources"].values()}
    assert json.dumps({"Fn::GetAtt": [function_id, "Arn"]}) in tokens
    _, resource = only(template, RESOURCE_TYPE)
    assert int(resource["Properties"]["ServiceTimeout"]) == SERVICE_TIMEOUT_S


def test_the_key_policys_pin_is_fed_only_by_the_handlers_answer(template: Json) -> None:
    # Every use of the build's attributes is a Fn::GetAtt of the custom resource, whose only answer is the
    # function's (test above); nothing else in the template names AcceptedPcr0.
    build_id = logical_id(template, RESOURCE_TYPE)
    text = json.dumps(template["Resources"])
    assert text.count("AcceptedPcr0") == text.count(f'["{build_id}", "AcceptedPcr0"]')


def test_the_handler_outlasts_the_build_and_cloudformation_outlasts_the_handler(template: Json) -> None:
    _, function = _handler(template)
    assert function["Properties"]["Timeout"] == HANDLER_TIMEOUT.to_seconds() == 900
    _, project = only(template, "AWS::CodeBuild::Project")
    assert project["Properties"]["TimeoutInMinutes"] == BUILD_TIMEOUT.to_minutes() == 12
    assert project["Properties"]["QueuedTimeoutInMinutes"] == QUEUED_TIMEOUT.to_minutes() == 5
    margin = HANDLER_TIMEOUT.to_seconds() - custom_resource.STOP_MARGIN_S - custom_resource.POLL_INTERVAL_S
    assert BUILD_TIMEOUT.to_seconds() < margin
    assert HANDLER_TIMEOUT.to_seconds() < SERVICE_TIMEOUT_S <= 3600


def test_the_handlers_asset_is_the_handler_package_alone(built: Built) -> None:
    _, function = _handler(built.template)
    key = built.resolve(function["Properties"]["Code"]["S3Key"])
    manifest = json.loads((built.outdir / "ImageTest.assets.json").read_text())
    directory = built.outdir / manifest["files"][key.removesuffix(".zip")]["source"]["path"]
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert files == sorted(f"handler/{p.name}" for p in HANDLER_DIR.glob("*.py"))


def test_a_host_role_may_read_only_the_built_eif_and_bundle_versions(template: Json) -> None:
    build_id, bucket_id = logical_id(template, RESOURCE_TYPE), logical_id(template, "AWS::S3::Bucket")
    host = logical_id(template, "AWS::IAM::Role", "HostRole")
    statements = role_statements(template, host)
    # Only the build's versions: GetObject with a version id needs s3:GetObjectVersion alone.
    assert [s.actions for s in statements] == [("s3:GetObjectVersion",)] * 2
    policy = next(p for k, p in resources(template, "AWS::IAM::Policy").items() if k.startswith("HostRole"))
    raw = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(raw) == {"FetchPinnedEif", "FetchHostBundle"}
    for sid, key, version in (
        ("FetchPinnedEif", "EifKey", "EifVersion"),
        ("FetchHostBundle", "BundleKey", "BundleVersion"),
    ):
        assert raw[sid]["Resource"] == {
            "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/", {"Fn::GetAtt": [build_id, key]}]]
        }
        assert raw[sid]["Condition"] == {
            "StringEquals": {"s3:versionid": {"Fn::GetAtt": [build_id, version]}}
        }


def test_cfn_lint_passes_but_for_cdks_own_redundant_depends_on(built: Built) -> None:
    # W3005: CDK gives each Lambda function (ours and the S3 auto-delete provider's) a DependsOn on the
    # role it already references with GetAtt. Harmless and not ours to change in CDK's constructs;
    # every other check applies.
    template_path = built.outdir / "ImageTest.template.json"
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--", str(template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cdk_nag_finds_nothing_unacknowledged(built: Built) -> None:
    report = json.loads((built.outdir / "validation-report.json").read_text())
    for plugin in report["pluginReports"]:
        assert plugin["violations"] == [], (plugin["pluginName"], plugin["violations"])


def test_every_acknowledgment_gives_a_specific_reason() -> None:
    for acknowledgment in acknowledgments("Bucket"):
        assert len(acknowledgment.reason) > 60, acknowledgment.id


def test_the_acknowledgments_cover_the_image_only(tmp_path: Path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "ImageTest")
    EnclaveImage(
        stack, "EnclaveImage", code=code_asset(stack, "Code"), expected_pcr0="", retire_previous=False
    )
    s3.Bucket(stack, "UnloggedElsewhere", enforce_ssl=True)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    found = [
        (v["ruleName"], c["constructPath"])
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
    ]
    assert found == [("AwsSolutions-S1", "ImageTest/UnloggedElsewhere/Resource")]

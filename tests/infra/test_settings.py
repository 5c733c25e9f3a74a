"""Context knobs: defaults, parsing of `-c key=value` strings, and clear errors for impossible values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk import App

from infra.app import build_app
from infra.settings import DEFAULTS, Settings, SettingsError, load_settings, parse_instance_type
from tests.infra.cfn import Json, resources
from tests.infra.conftest import CDK_JSON_CONTEXT, Synth, SynthFn


def settings(**overrides: Any) -> Settings:
    context: Mapping[str, Any] = {**CDK_JSON_CONTEXT, **overrides}
    return load_settings(context.get)


def test_cdk_json_context_is_the_documented_defaults() -> None:
    assert dict(CDK_JSON_CONTEXT) == dict(DEFAULTS)


def test_defaults_fit_a_c5_xlarge() -> None:
    s = settings()
    assert (s.instance.name, s.instance.vcpus, s.instance.memory_mib) == ("c5.xlarge", 4, 8192)
    assert (s.enclave_cpu_count, s.enclave_memory_mib, s.enclave_cid, s.enclave_debug) == (2, 3072, 16, False)


def test_command_line_strings_are_parsed() -> None:
    s = settings(enclave_cpu_count="2", enclave_debug="true", encryption_context='{"app": "x", "env": "dev"}')
    assert s.enclave_debug is True
    assert s.encryption_context == {"app": "x", "env": "dev"}


GRAVITON = ["c6g.xlarge", "c7g.xlarge", "c7gn.2xlarge", "m6g.xlarge", "m7gd.2xlarge", "r7g.xlarge",
            "t4g.xlarge", "a1.xlarge", "im4gn.xlarge", "is4gen.xlarge", "x2gd.xlarge", "i4g.xlarge",
            "g5g.xlarge", "hpc7g.4xlarge", "c8g.xlarge"]  # fmt: skip
X86_64 = [
    "c5.xlarge",
    "c6i.xlarge",
    "c6in.xlarge",
    "m5zn.xlarge",
    "g4dn.xlarge",
    "r5b.xlarge",
    "m7i-flex.xlarge",
]


@pytest.mark.parametrize("name", GRAVITON)
def test_graviton_types_are_arm64(name: str) -> None:
    assert parse_instance_type(name).arm64


@pytest.mark.parametrize("name", X86_64)
def test_x86_64_types_are_not_arm64(name: str) -> None:
    assert not parse_instance_type(name).arm64


@pytest.mark.parametrize("name", GRAVITON)
def test_an_arm64_instance_type_is_refused_because_the_image_is_x86_64_only(name: str) -> None:
    with pytest.raises(SettingsError, match=f"instance_type '{name}' is arm64 \\(Graviton\\)") as refused:
        settings(instance_type=name, enclave_cpu_count=1)
    assert "the enclave image is x86_64 only" in str(refused.value)
    assert "wheel hashes in app/enclave/requirements.txt are for x86_64" in str(refused.value)


@pytest.mark.parametrize(
    "region",
    [
        "cn-north-1",
        "cn-northwest-1",
        "us-gov-west-1",
        "us-gov-east-1",
        "us-iso-east-1",
        "us-isob-east-1",
        "eu-isoe-west-1",
        "us-isof-south-1",
        "eusc-de-east-1",
    ],
)
def test_a_region_outside_the_aws_partition_is_refused(region: str) -> None:
    context: Mapping[str, Any] = dict(CDK_JSON_CONTEXT)
    with pytest.raises(SettingsError, match=f"region '{region}' is outside the 'aws' partition"):
        load_settings(context.get, region=region)


@pytest.mark.parametrize("region", [None, "", "us-east-1", "eu-central-2", "ap-southeast-5", "il-central-1"])
def test_a_region_of_the_aws_partition_or_none_passes(region: str | None) -> None:
    context: Mapping[str, Any] = dict(CDK_JSON_CONTEXT)
    assert load_settings(context.get, region=region).instance.name == "c5.xlarge"


def test_one_host_and_the_previous_pcr0_kept_by_default() -> None:
    s = settings()
    assert (s.hosts, s.retire_previous) == (1, False)
    assert (settings(hosts="3").hosts, settings(retire_previous="true").retire_previous) == (3, True)


def test_the_nitro_cli_version_is_pinned_to_the_analysed_one_by_default_and_can_be_changed() -> None:
    # 1.5.0: the aws-nitro-enclaves-cli release docs/reproducible-build.md's analysis read (2950b36).
    assert DEFAULTS["nitro_cli_version"] == "1.5.0"
    assert settings().nitro_cli_version == "1.5.0"
    assert settings(nitro_cli_version=" 1.3.1 ").nitro_cli_version == "1.3.1"
    assert settings(nitro_cli_version="").nitro_cli_version == ""  # explicitly unpinned


def test_pcr0_is_normalised_to_lowercase() -> None:
    assert settings(enclave_pcr0="AB" * 48).enclave_pcr0 == "ab" * 48


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"enclave_cpu_count": 3}, "odd"),
        ({"enclave_cpu_count": 4}, "leaves no vCPU"),
        ({"enclave_cpu_count": 0}, "at least 1"),
        ({"enclave_memory_mib": 7168}, "more than c5.xlarge can give"),
        ({"enclave_memory_mib": 256}, "4 x the EIF"),
        ({"enclave_cid": 3}, "reserved"),
        ({"enclave_cid": 0}, "reserved"),
        ({"instance_type": "t3.xlarge"}, "does not support Nitro Enclaves"),
        ({"instance_type": "mac2.metal"}, "does not support Nitro Enclaves"),
        ({"instance_type": "a1.xlarge"}, "is arm64"),
        ({"instance_type": "c5.large"}, "leaves no vCPU"),
        ({"instance_type": "xlarge"}, "not an EC2 instance type"),
        ({"enclave_debug": "maybe"}, "true or false"),
        ({"enclave_pcr0": "abc"}, "96 hex"),
        ({"enclave_pcr0": "0" * 96}, "debug-mode"),
        ({"key_alias": "alias/aws/kms"}, "alias/aws/"),
        ({"key_alias": "nitro"}, "alias/name"),
        ({"encryption_context": "{}"}, "non-empty"),
        ({"encryption_context": '{"card_id": "1"}'}, "card_id"),
        # What the hosts' reader of demo.env would refuse at boot (its ENCRYPTION_CONTEXT pattern).
        ({"encryption_context": '{"app": "two words"}'}, "no space, quote, backslash"),
        ({"encryption_context": '{"app": "say \\"hi\\""}'}, "no space, quote, backslash"),
        ({"encryption_context": '{"app": "back\\\\slash"}'}, "no space, quote, backslash"),
        ({"encryption_context": '{"app": "caf\u00e9"}'}, "no space, quote, backslash"),
        ({"encryption_context": '{"": "empty key"}'}, "no space, quote, backslash"),
        ({"encryption_context": {f"k{i}": "v" for i in range(17)}}, "at most 16 pairs"),
        ({"boot_timeout_minutes": 29}, "boot_timeout_minutes 29 must be within 30..60"),
        ({"boot_timeout_minutes": 61}, "boot_timeout_minutes 61 must be within 30..60: .*PauseTime.*PT1H"),
        ({"log_retention_days": 8}, "log_retention_days 8"),
        ({"hosts": 0}, "hosts 0 must be within 1..10"),
        ({"hosts": 11}, "hosts 11 must be within 1..10"),
        ({"hosts": "two"}, "hosts must be an integer"),
        ({"retire_previous": "maybe"}, "retire_previous must be true or false"),
        ({"nitro_cli_version": "1.3"}, "nitro_cli_version must look like '1.3.1'"),
        ({"nitro_cli_version": "v1.3.1"}, "nitro_cli_version must look like '1.3.1'"),
        ({"nitro_cli_version": "1.3.1; rm -rf /"}, "nitro_cli_version must look like '1.3.1'"),
    ],
)
def test_impossible_values_are_rejected_with_the_value(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        settings(**overrides)


@pytest.mark.parametrize("minutes", [30, 60])
def test_boot_timeouts_at_the_bounds_are_accepted(minutes: int) -> None:
    assert settings(boot_timeout_minutes=minutes).boot_timeout_minutes == minutes


def test_synth_refuses_an_invalid_context() -> None:
    app = App(context={**CDK_JSON_CONTEXT, "enclave_cpu_count": "3"})
    with pytest.raises(SettingsError, match="enclave_cpu_count 3 is odd"):
        build_app(app)


def test_a_pinned_nitro_cli_version_reaches_the_build_project(synth: SynthFn) -> None:
    # -c nitro_cli_version=X.Y.Z: the project's NITRO_CLI_VERSION, which the buildspec installs and
    # build-eif.sh holds the installed nitro-cli to.
    (project,) = resources(synth({"nitro_cli_version": "1.3.1"}).template, "AWS::CodeBuild::Project").values()
    variables = {v["Name"]: v["Value"] for v in project["Properties"]["Environment"]["EnvironmentVariables"]}
    assert variables["NITRO_CLI_VERSION"] == "1.3.1"


def test_synth_refuses_a_region_the_cdk_cli_resolved_outside_the_aws_partition() -> None:
    app = App(context=dict(CDK_JSON_CONTEXT))
    with pytest.raises(SettingsError, match="region 'cn-north-1' is outside the 'aws' partition"):
        build_app(app, region="cn-north-1")


def test_the_template_resolves_only_in_the_aws_partition(default: Synth) -> None:
    # The deploy-time half, for a synth that did not know the region: one Fn::FindInMap over AWS::Partition,
    # into a mapping whose only key is `aws`, so any other partition is a template error before any resource.
    mappings = default.template["Mappings"]
    assert mappings["OnlyTheAwsPartition"] == {"aws": {"KmsDnsSuffix": "amazonaws.com"}}
    endpoint = default.template["Outputs"]["KmsEndpoint"]["Value"]
    lookup = {"Fn::FindInMap": ["OnlyTheAwsPartition", {"Ref": "AWS::Partition"}, "KmsDnsSuffix"]}
    assert endpoint == {"Fn::Join": ["", ["kms.", {"Ref": "AWS::Region"}, ".", lookup]]}
    assert _find_in_map(default.template, lookup, partition="aws") == "amazonaws.com"
    for partition in ("aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"):
        with pytest.raises(KeyError):  # CloudFormation: "Unable to get mapping for OnlyTheAwsPartition::..."
            _find_in_map(default.template, lookup, partition=partition)


def _find_in_map(template: Json, node: Json, *, partition: str) -> str:
    name, top, second = node["Fn::FindInMap"]
    key = partition if top == {"Ref": "AWS::Partition"} else top
    value: str = template["Mappings"][name][key][second]
    return value

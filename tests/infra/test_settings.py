"""Context knobs: defaults, parsing of `-c key=value` strings, and clear errors for impossible values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from aws_cdk import App

from infra.app import build_app
from infra.settings import DEFAULTS, Settings, SettingsError, load_settings, parse_instance_type
from tests.infra.cfn import resources
from tests.infra.conftest import CDK_JSON_CONTEXT, SynthFn


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


def test_graviton_types_are_arm64() -> None:
    assert parse_instance_type("c6g.xlarge").arm64
    assert parse_instance_type("m7gd.2xlarge").arm64
    assert not parse_instance_type("c5.xlarge").arm64
    assert not parse_instance_type("g4dn.xlarge").arm64


def test_odd_cpu_count_on_graviton_is_allowed() -> None:
    assert settings(instance_type="c6g.xlarge", enclave_cpu_count=1).enclave_cpu_count == 1


def test_one_host_and_the_previous_pcr0_kept_by_default() -> None:
    s = settings()
    assert (s.hosts, s.retire_previous) == (1, False)
    assert (settings(hosts="3").hosts, settings(retire_previous="true").retire_previous) == (3, True)


def test_the_nitro_cli_version_is_unpinned_by_default_and_pinned_as_given() -> None:
    assert settings().nitro_cli_version == ""
    assert settings(nitro_cli_version=" 1.3.1 ").nitro_cli_version == "1.3.1"


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
        ({"instance_type": "a1.xlarge"}, "does not support Nitro Enclaves"),
        ({"instance_type": "c5.large"}, "leaves no vCPU"),
        ({"instance_type": "xlarge"}, "not an EC2 instance type"),
        ({"enclave_debug": "maybe"}, "true or false"),
        ({"enclave_pcr0": "abc"}, "96 hex"),
        ({"enclave_pcr0": "0" * 96}, "debug-mode"),
        ({"key_alias": "alias/aws/kms"}, "alias/aws/"),
        ({"key_alias": "nitro"}, "alias/name"),
        ({"encryption_context": "{}"}, "non-empty"),
        ({"encryption_context": '{"card_id": "1"}'}, "card_id"),
        ({"boot_timeout_minutes": 9}, "boot_timeout_minutes 9 must be within 10..60"),
        ({"boot_timeout_minutes": 61}, "boot_timeout_minutes 61 must be within 10..60: .*PauseTime.*PT1H"),
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


@pytest.mark.parametrize("minutes", [10, 60])
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

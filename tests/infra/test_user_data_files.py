"""The bytes the user data's heredocs write, produced by bash itself from the rendered template, checked by
the rules of the tool that reads each file (the allocator's parser, YAML, JSON, bash's `.`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from rehearsal.contracts.allocator_config import AllocatorConfig, parse_allocator_config
from tests.infra.cfn import Json
from tests.infra.test_host_files import user_data_parts

CONF_DIR_LINE = "readonly CONF_DIR=/etc/nitro-enclave-demo"
HOME_DIR_LINE = "readonly HOME_DIR=/opt/nitro-enclave-demo"
# The heredocs end before the host bundle's download; nothing after it writes configuration.
FIRST_LINE_AFTER_THE_FILES = "bundle_dir=$(mktemp -d)"
WRITTEN = ("demo.env", "allocator.yaml", "vsock-proxy.yaml", "amazon-cloudwatch-agent.json")


def written_by_user_data(template: Json, scratch: Path) -> dict[str, bytes]:
    """Run the rendered user data up to the bundle download, as cloud-init would (bash, no HOME), with its
    configuration and install directories redirected into `scratch`; return what it wrote."""
    script = user_data_parts(template)["user-data.sh"]
    for line in (CONF_DIR_LINE, HOME_DIR_LINE, FIRST_LINE_AFTER_THE_FILES):
        assert script.count(line) == 1, f"the user data no longer has one {line!r}"
    conf, home = scratch / "conf", scratch / "home"
    script = script.replace(CONF_DIR_LINE, f"readonly CONF_DIR={conf}")
    script = script.replace(HOME_DIR_LINE, f"readonly HOME_DIR={home}")
    script = script[: script.index(FIRST_LINE_AFTER_THE_FILES)]
    subprocess.run(["/bin/bash", "-c", script], check=True, env={"PATH": "/usr/bin:/bin"})
    return {path.name: path.read_bytes() for path in conf.iterdir()}


@pytest.fixture(scope="module")
def written(template: Json, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    return written_by_user_data(template, tmp_path_factory.mktemp("user-data"))


def test_the_user_data_writes_each_configuration_file(written: dict[str, bytes]) -> None:
    assert sorted(written) == sorted(WRITTEN)


def test_the_allocator_accepts_the_allocator_yaml_bash_writes(written: dict[str, bytes]) -> None:
    # The allocator's own parse rules (rehearsal/contracts/allocator_config.py names the source).
    parsed = parse_allocator_config(written["allocator.yaml"].decode())
    assert parsed == AllocatorConfig(memory_mib="3072", cpu_count="2", cpu_pool=None)


@pytest.mark.parametrize("name", WRITTEN)
def test_each_file_ends_in_exactly_one_newline(written: dict[str, bytes], name: str) -> None:
    assert written[name].endswith(b"\n")
    assert not written[name].endswith(b"\n\n"), f"{name} ends with a blank line"


def test_the_other_files_parse(written: dict[str, bytes]) -> None:
    assert yaml.safe_load(written["vsock-proxy.yaml"])["allowlist"]
    assert json.loads(written["amazon-cloudwatch-agent.json"])["logs"]
    assert b"AWS_REGION=us-east-1\n" in written["demo.env"]

"""The isolated network's endpoint list covers every AWS API a host calls, read from the code that runs there:
the host programs' boto3 clients, the enclave's KMS host name and the host scripts' `aws <service>` calls."""

from __future__ import annotations

import re
from pathlib import Path

from infra.constants import HOST_FILES_DIR, REPO_ROOT
from infra.constructs import endpoints

# Everything under app/ runs on a host (or in its enclave) except the local emulator's programs.
HOST_CODE = REPO_ROOT / "app"
NOT_ON_A_HOST = (HOST_CODE / "local",)
_CLIENT_RE = re.compile(r"""\.client\(\s*["']([a-z0-9-]+)["']""")
# app/enclave/kms_client.py names KMS by host name (f"kms.{region}.amazonaws.com"), reached via vsock-proxy.
_HOST_NAME_RE = re.compile(r"""["']([a-z0-9-]+)\.\{region\}\.amazonaws\.com""")
_CLI_RE = re.compile(r"^[^#\n]*?\baws\s+([a-z0-9-]+)\s", re.MULTILINE)


def boto3_services(root: Path = HOST_CODE) -> dict[str, set[str]]:
    """Service name -> the files (relative to `root`) that create a client for it or dial its host name."""
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        if any(path.is_relative_to(skip) for skip in NOT_ON_A_HOST):
            continue
        text = path.read_text()
        for service in {*_CLIENT_RE.findall(text), *_HOST_NAME_RE.findall(text)}:
            found.setdefault(service, set()).add(str(path.relative_to(root)))
    return found


def cli_services(directory: Path = HOST_FILES_DIR) -> dict[str, set[str]]:
    """AWS CLI command (s3, s3api, cloudformation, ...) -> the host files that run it."""
    found: dict[str, set[str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            for command in _CLI_RE.findall(path.read_text()):
                found.setdefault(command, set()).add(path.name)
    return found


def uncovered(services: dict[str, set[str]]) -> dict[str, set[str]]:
    listed = {*endpoints.INTERFACE_ENDPOINTS, *endpoints.GATEWAY_ENDPOINTS}
    return {s: where for s, where in services.items() if endpoints.endpoint_for(s) not in listed}


def test_the_scan_finds_the_clients_we_know_of() -> None:
    # Guards the scan itself: a regex that found nothing would make the coverage tests pass vacuously.
    assert {"kms", "sqs", "ssm", "cloudwatch"} <= set(boto3_services())
    assert "enclave/kms_client.py" in boto3_services()["kms"]
    assert {"cloudformation", "s3api"} <= set(cli_services())


def test_every_boto3_client_on_a_host_has_an_endpoint() -> None:
    assert uncovered(boto3_services()) == {}


def test_every_aws_cli_call_in_the_host_files_has_an_endpoint() -> None:
    assert uncovered(cli_services()) == {}


def test_an_unlisted_client_is_reported(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text('import boto3\nboto3.client("sts")\nsession.client("sqs")\n')
    assert uncovered(boto3_services(tmp_path)) == {"sts": {"probe.py"}}


def test_an_unlisted_cli_call_is_reported(tmp_path: Path) -> None:
    (tmp_path / "probe.sh").write_text("# aws ecr is only a comment\naws sts get-caller-identity\n")
    assert uncovered(cli_services(tmp_path)) == {"sts": {"probe.sh"}}


def test_the_agents_endpoints_are_listed() -> None:
    # Not in our code but on every host: the SSM Agent (Session Manager, Run Command), the CloudWatch agent.
    assert {"ssm", "ssmmessages", "ec2messages", "logs"} <= set(endpoints.INTERFACE_ENDPOINTS)


def test_the_readme_lists_every_endpoint() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for name in (*endpoints.INTERFACE_ENDPOINTS, *endpoints.GATEWAY_ENDPOINTS):
        assert f"`com.amazonaws.<region>.{name}`" in readme, name

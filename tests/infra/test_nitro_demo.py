"""`nitro-demo` (host/nitro-demo.sh): the right program for each command, root only, and the Status SSM
document run as SSM runs it (one shell script), against the real `app.ops` on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from infra.constants import HOST_FILES_DIR, NITRO_DEMO, REPO_ROOT
from tests.infra.cfn import Json, resources
from tests.infra.demo_env import VALID, render

NOBODY = 65534


def _nitro_demo(
    tmp_path: Path,
    *args: str,
    python: str | None = None,
    prefix: tuple[str, ...] = (),
    script: Path = HOST_FILES_DIR / "nitro-demo.sh",
) -> subprocess.CompletedProcess[str]:
    env_path = tmp_path / "demo.env"
    env_path.write_text(render(VALID))
    if python is None:
        stub = tmp_path / "python"
        stub.write_text('#!/bin/sh\necho "python $*"\n')
        stub.chmod(0o755)
        python = str(stub)
    return subprocess.run(
        [*prefix, "/bin/bash", str(script), *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "NITRO_ENCLAVE_DEMO_ENV_FILE": str(env_path),
            "NITRO_ENCLAVE_DEMO_PYTHON": python,
            "NITRO_ENCLAVE_DEMO_HOST_DIR": str(HOST_FILES_DIR),
        },
    )


@pytest.mark.parametrize(
    ("args", "runs"),
    [
        (("status",), "python -m app.ops status"),
        (("doctor",), "python -m app.ops doctor"),
        (("status", "--report-only"), "python -m app.ops --report-only status"),
        (("doctor", "--report-only"), "python -m app.ops --report-only doctor"),
        (("send",), "python -m app.producer --count 10 --wait"),
        (("send", "25"), "python -m app.producer --count 25 --wait"),
    ],
)
def test_nitro_demo_runs_the_right_program(tmp_path: Path, args: tuple[str, ...], runs: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("nitro-demo runs as root only")
    result = _nitro_demo(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == runs


@pytest.mark.parametrize(
    "args", [(), ("send", "0"), ("send", "1001"), ("send", "5;reboot"), ("bogus",), ("status", "--bogus")]
)
def test_nitro_demo_refuses_bad_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    if os.geteuid() != 0:
        pytest.skip("nitro-demo runs as root only")
    result = _nitro_demo(tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""


def test_nitro_demo_tells_a_non_root_user_to_use_sudo(tmp_path: Path) -> None:
    # Session Manager's ssm-user is not root and not in group `ne`. It must be able to read the script
    # wherever this checkout lives (a CI clone may sit under a 0700 directory), so it runs a copy placed in
    # a directory everyone may enter.
    readable = Path(tempfile.mkdtemp(prefix="nitro-demo-", dir="/tmp"))
    readable.chmod(0o755)
    script = readable / "nitro-demo.sh"
    shutil.copyfile(HOST_FILES_DIR / "nitro-demo.sh", script)
    script.chmod(0o755)
    drop = (
        ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups") if os.geteuid() == 0 else ()
    )
    try:
        result = _nitro_demo(readable, "status", prefix=drop, script=script)
    finally:
        shutil.rmtree(readable)
    assert result.returncode == 1
    assert "run  sudo nitro-demo status" in result.stderr
    assert result.stdout == ""


def _status_document_script(template: Json, nitro_demo: Path) -> str:
    (status,) = [d for k, d in resources(template, "AWS::SSM::Document").items() if "Status" in k]
    lines = status["Properties"]["Content"]["mainSteps"][0]["inputs"]["runCommand"]
    return "\n".join(lines).replace(NITRO_DEMO, str(nitro_demo)) + "\n"


def _run_status_document(template: Json, tmp_path: Path, python: str) -> subprocess.CompletedProcess[str]:
    """aws:runShellScript writes runCommand into one script and runs it; nitro-demo is the real script
    running the real `python -m app.ops` here, on a machine without Nitro (so doctor finds failures)."""
    env_path = tmp_path / "demo.env"
    env_path.write_text(render(VALID))  # no enclave here, and AWS at a refused loopback port: failures
    wrapper = tmp_path / "nitro-demo"
    wrapper.write_text(
        f"#!/bin/sh\nNITRO_ENCLAVE_DEMO_ENV_FILE={env_path} NITRO_ENCLAVE_DEMO_PYTHON={python} "
        f"NITRO_ENCLAVE_DEMO_HOST_DIR={HOST_FILES_DIR} AWS_ENDPOINT_URL=http://127.0.0.1:9 "
        f'exec /bin/bash {HOST_FILES_DIR / "nitro-demo.sh"} "$@"\n'
    )
    wrapper.chmod(0o755)
    script = tmp_path / "_script.sh"
    script.write_text(_status_document_script(template, wrapper))
    return subprocess.run(
        ["/bin/bash", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_status_document_reports_findings_and_succeeds(template: Json, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("nitro-demo runs as root only")
    if Path("/dev/nitro_enclaves").exists():
        pytest.skip("this machine has Nitro Enclaves")
    result = _run_status_document(template, tmp_path, sys.executable)
    assert result.returncode == 0, result.stderr
    assert "[FAIL] enclave device: /dev/nitro_enclaves is missing" in result.stdout
    assert "[FAIL] enclave ping" in result.stdout


def test_status_document_fails_when_the_tool_cannot_run(template: Json, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("nitro-demo runs as root only")
    result = _run_status_document(template, tmp_path, str(tmp_path / "no-such-python"))
    assert result.returncode != 0

"""infra/build/build-eif.sh and measure.sh, run by bash against stub docker and nitro-cli on PATH.

The stubs record their arguments (and docker its standard input, the context tar) and print what the real
tools print on success: nitro-cli build-enclave writes the EIF and puts only the measurements JSON on stdout
(aws/aws-nitro-enclaves-cli src/lib.rs, build_from_docker). The script must hand docker the normalized
context with the fixed epoch, keep the two files, and refuse a PCR0 that is all zeros or malformed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from infra.build import context
from infra.constants import REPO_ROOT
from tests.infra.test_host_files import tool

BUILD_EIF = REPO_ROOT / "infra/build/build-eif.sh"
MEASURE = REPO_ROOT / "infra/build/measure.sh"
GOOD_PCR0 = "ab" * 48
BASH = shutil.which("bash") or "/bin/bash"
# `docker version --format T` renders T over the daemon's /version answer; STUB_DOCKER_SERVER is that
# rendering for build-eif.sh's template (default: CodeBuild's AL2023 standard 5.0 daemon, Docker 28.5.2,
# whose minimum API is Docker 28's 1.24), STUB_DOCKER_DOWN a daemon that cannot be reached.
DOCKER_STUB = """#!/bin/bash
if [[ "$1" == "version" ]]; then
  [[ "$2 $3" == "--format {{.Server.Version}} {{.Server.MinAPIVersion}}" ]] || exit 125
  [[ -z "${STUB_DOCKER_DOWN:-}" ]] || { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
  echo "${STUB_DOCKER_SERVER:-28.5.2 1.24}"; exit 0
fi
printf '%s\\n' "$@" >"$STUB_LOG/docker.args"
cat >"$STUB_LOG/docker.stdin"
echo "building (stub)"
exit "${STUB_DOCKER_EXIT:-0}"
"""
# clap's --version format, "Nitro CLI X.Y.Z" (aws/aws-nitro-enclaves-cli src/main.rs); STUB_VERSION_LINE
# stands for another answer.
NITRO_CLI_STUB = """#!/bin/bash
if [[ "$1" == "--version" ]]; then echo "${STUB_VERSION_LINE:-Nitro CLI 1.4.3}"; exit 0; fi
printf '%s\\n' "$@" >"$STUB_LOG/nitro-cli.args"
out=""
while [[ $# -gt 0 ]]; do [[ "$1" == "--output-file" ]] && out="$2"; shift; done
printf 'EIF' >"$out"
printf '%s\\n' "$STUB_MEASUREMENTS"
"""


def _measurements(pcr0: str) -> str:
    return json.dumps({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr0, "PCR1": "cd" * 48,
                                        "PCR2": "ef" * 48}}, indent=2)  # fmt: skip


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("docker", DOCKER_STUB), ("nitro-cli", NITRO_CLI_STUB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "python3").symlink_to(shutil.which("python3") or "/usr/bin/python3")
    (tmp_path / "log").mkdir()
    return tmp_path


def _run(script: Path, stubs: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": f"{stubs / 'bin'}:/usr/bin:/bin",
        "HOME": str(stubs),
        "STUB_LOG": str(stubs / "log"),
        "STUB_MEASUREMENTS": _measurements(GOOD_PCR0),
        **env,
    }
    return subprocess.run(
        [BASH, str(script), *args], env=environment, capture_output=True, text=True, check=False, cwd=stubs
    )


def test_builds_from_the_normalized_context_and_keeps_both_files(stubs: Path) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), SOURCE_DATE_EPOCH="1")
    assert done.returncode == 0, done.stderr
    assert (stubs / "out/enclave.eif").read_bytes() == b"EIF"
    assert json.loads((stubs / "out/measurements.json").read_text())["Measurements"]["PCR0"] == GOOD_PCR0
    docker_args = (stubs / "log/docker.args").read_text().split("\n")[:-1]
    epoch = str(context.SOURCE_DATE_EPOCH)  # the fixed one, whatever the caller's environment said
    assert docker_args == ["build", "--no-cache", "--build-arg", f"SOURCE_DATE_EPOCH={epoch}", "-f",
                           "enclave/Dockerfile", "-t", "nitro-enclave-demo-enclave:build", "-"]  # fmt: skip
    expected = context.write(REPO_ROOT / "app", stubs / "expected.tar")
    assert hashlib.sha256((stubs / "log/docker.stdin").read_bytes()).hexdigest() == expected
    assert f"build context sha256 {expected}" in done.stderr
    nitro_args = (stubs / "log/nitro-cli.args").read_text().split()
    assert nitro_args[:3] == ["build-enclave", "--docker-uri", "nitro-enclave-demo-enclave:build"]
    assert done.stdout == ""  # docker's own output goes to stderr
    assert (stubs / "out/nitro-cli-version").read_text() == "1.4.3\n"


def test_a_pinned_nitro_cli_version_is_kept(stubs: Path) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), NITRO_CLI_VERSION="1.4.3")
    assert done.returncode == 0, done.stderr
    assert (stubs / "out/nitro-cli-version").read_text() == "1.4.3\n"


def test_another_installed_nitro_cli_than_the_pin_builds_nothing(stubs: Path) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), NITRO_CLI_VERSION="1.3.1")
    assert done.returncode == 1
    assert "nitro-cli 1.4.3 is installed, but NITRO_CLI_VERSION pins 1.3.1" in done.stderr
    assert not (stubs / "log/docker.args").exists()
    assert not (stubs / "out/nitro-cli-version").exists()


@pytest.mark.parametrize("line", ["nitro-cli 1.4.3", "Nitro CLI 1.4", "Nitro CLI 1.4.3.1", "Nitro CLI"])
def test_a_version_line_that_is_not_clap_s_is_refused(stubs: Path, line: str) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), STUB_VERSION_LINE=line)
    assert done.returncode == 1
    assert "not 'Nitro CLI X.Y.Z'" in done.stderr
    assert not (stubs / "log/docker.args").exists()


def test_the_nitro_cli_and_docker_versions_are_logged(stubs: Path) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"))
    assert done.returncode == 0, done.stderr
    assert "build-eif.sh: nitro-cli 1.4.3\n" in done.stderr
    assert "build-eif.sh: Docker 28.5.2 (minimum API 1.24)\n" in done.stderr


# nitro-cli up to 1.3.1 bundles linuxkit v0.8, which speaks Docker API 1.30 only; Docker 29 accepts 1.44 and
# later (aws/aws-nitro-enclaves-cli#746, docs/decisions/nitro-cli-and-docker.md).
@pytest.mark.parametrize(
    ("nitro_cli", "server"), [("1.3.1", "29.0.4 1.44"), ("1.2.3", "29.1.2 1.44"), ("1.3.1", "27.5.1 1.31")]
)
def test_a_nitro_cli_whose_linuxkit_the_daemon_refuses_builds_nothing(
    stubs: Path, nitro_cli: str, server: str
) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), STUB_VERSION_LINE=f"Nitro CLI {nitro_cli}",
                STUB_DOCKER_SERVER=server)  # fmt: skip
    assert done.returncode == 1
    version, minimum = server.split()
    assert (
        f"build-eif.sh: nitro-cli-docker-api-mismatch: nitro-cli {nitro_cli} bundles linuxkit v0.8"
        in done.stderr
    )
    assert f"but Docker {version} refuses API versions below {minimum}" in done.stderr
    assert not (stubs / "log/docker.args").exists()
    assert not (stubs / "log/nitro-cli.args").exists()


@pytest.mark.parametrize(
    ("nitro_cli", "server"),
    [
        ("1.3.1", "28.5.2 1.24"),
        ("1.3.1", "29.0.4 1.30"),
        ("1.3.2", "29.0.4 1.44"),
        ("1.5.0", "29.1.2-rc.1 1.44"),
    ],
)
def test_a_nitro_cli_and_docker_pair_not_known_to_fail_builds(
    stubs: Path, nitro_cli: str, server: str
) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), STUB_VERSION_LINE=f"Nitro CLI {nitro_cli}",
                STUB_DOCKER_SERVER=server)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (stubs / "out/nitro-cli-version").read_text() == f"{nitro_cli}\n"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STUB_DOCKER_DOWN": "1"}, "docker version could not reach the Docker daemon"),
        ({"STUB_DOCKER_SERVER": "28.5.2"}, "docker version printed '28.5.2', not 'X.Y.Z A.B'"),
        ({"STUB_DOCKER_SERVER": "dev 1.44"}, "docker version printed 'dev 1.44', not 'X.Y.Z A.B'"),
    ],
)
def test_a_docker_daemon_that_does_not_say_its_versions_builds_nothing(
    stubs: Path, env: dict[str, str], message: str
) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), **env)
    assert done.returncode == 1
    assert message in done.stderr
    assert not (stubs / "log/docker.args").exists()


@pytest.mark.parametrize(
    ("measurements", "message"),
    [
        (_measurements("0" * 96), "all zeros"),
        (_measurements("AB" * 48), "96 lower-case hex digits"),
        (_measurements("ab" * 32), "96 lower-case hex digits"),
        ("not json", "96 lower-case hex digits"),
    ],
)
def test_a_pcr0_that_is_no_measurement_fails_the_build(stubs: Path, measurements: str, message: str) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), STUB_MEASUREMENTS=measurements)
    assert done.returncode == 1
    assert message in done.stderr


def test_a_failed_docker_build_stops_before_nitro_cli(stubs: Path) -> None:
    done = _run(BUILD_EIF, stubs, str(stubs / "out"), STUB_DOCKER_EXIT="3")
    assert done.returncode == 3
    assert not (stubs / "log/nitro-cli.args").exists()


def test_missing_tools_and_arguments_are_named(stubs: Path) -> None:
    (stubs / "bin/nitro-cli").unlink()
    done = _run(BUILD_EIF, stubs, str(stubs / "out"))
    assert done.returncode == 1
    assert "nitro-cli is not on PATH" in done.stderr
    usage = _run(BUILD_EIF, stubs)
    assert usage.returncode == 1
    assert "usage: build-eif.sh OUT_DIR" in usage.stderr


def test_measure_matches_and_mismatches_with_both_values(stubs: Path) -> None:
    same = _run(MEASURE, stubs, PCR0=GOOD_PCR0, OUT_DIR=str(stubs / "m"))
    assert same.returncode == 0, same.stderr
    assert f"PCR0 matches the deployed pin: {GOOD_PCR0}" in same.stdout
    other = "12" * 48
    differs = _run(MEASURE, stubs, PCR0=other, OUT_DIR=str(stubs / "m"))
    assert differs.returncode == 1
    assert f"rebuilt:  {GOOD_PCR0}" in differs.stderr
    assert f"deployed: {other}" in differs.stderr


# The two SSM parameters CloudFormation writes (infra/constructs/key.py): the pin, and the measurements JSON
# with the nitro-cli version of the build.
AWS_STUB = """#!/bin/bash
printf '%s\\n' "$*" >>"$STUB_LOG/aws.args"
case "$4" in
  */pinned-pcr0) echo "$STUB_PIN" ;;
  */measurements) echo "{\\"PCR0\\":\\"$STUB_PIN\\",\\"NitroCliVersion\\":\\"$STUB_DEPLOYED\\"}" ;;
  *) exit 254 ;;
esac
"""


def _aws(stubs: Path) -> None:
    (stubs / "bin/aws").write_text(AWS_STUB)
    (stubs / "bin/aws").chmod(0o755)


def test_measure_reads_the_pin_and_the_version_from_the_stacks_ssm_parameters(stubs: Path) -> None:
    _aws(stubs)
    done = _run(MEASURE, stubs, STACK_NAME="Demo2", OUT_DIR=str(stubs / "m"), STUB_PIN=GOOD_PCR0,
                STUB_DEPLOYED="1.4.3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    query = "--query Parameter.Value --output text"
    assert (stubs / "log/aws.args").read_text().splitlines() == [
        f"ssm get-parameter --name /nitro-enclave-demo/Demo2/pinned-pcr0 {query}",
        f"ssm get-parameter --name /nitro-enclave-demo/Demo2/measurements {query}",
    ]
    assert "built with nitro-cli 1.4.3; install that version to compare: dnf install " in done.stderr
    assert "aws-nitro-enclaves-cli-1.4.3 aws-nitro-enclaves-cli-devel-1.4.3" in done.stderr


def test_measure_with_another_nitro_cli_than_the_deployed_compares_nothing(stubs: Path) -> None:
    _aws(stubs)
    done = _run(MEASURE, stubs, OUT_DIR=str(stubs / "m"), STUB_PIN=GOOD_PCR0, STUB_DEPLOYED="1.2.0")
    assert done.returncode == 2
    assert "nitro-cli 1.4.3 is installed, but NITRO_CLI_VERSION pins 1.2.0" in done.stderr
    assert "the rebuild failed" in done.stderr
    assert "matches" not in done.stdout


def test_measure_without_a_known_version_warns(stubs: Path) -> None:
    done = _run(MEASURE, stubs, PCR0=GOOD_PCR0, OUT_DIR=str(stubs / "m"))
    assert done.returncode == 0, done.stderr
    assert "WARNING: the deployed nitro-cli version is unknown" in done.stderr
    _aws(stubs)  # a deployed build that recorded none: the handler's "unknown"
    recorded = _run(MEASURE, stubs, OUT_DIR=str(stubs / "m"), STUB_PIN=GOOD_PCR0, STUB_DEPLOYED="unknown")
    assert recorded.returncode == 0, recorded.stderr
    assert "WARNING: the deployed nitro-cli version is unknown" in recorded.stderr
    given = _run(MEASURE, stubs, PCR0=GOOD_PCR0, NITRO_CLI_VERSION="1.4.4", OUT_DIR=str(stubs / "m"))
    assert given.returncode == 2
    assert "pins 1.4.4" in given.stderr


def test_measure_without_docker_or_nitro_cli_says_what_it_needs(stubs: Path) -> None:
    (stubs / "bin/docker").unlink()
    only = stubs / "only"  # no docker anywhere on PATH, whatever this machine has installed
    only.mkdir()
    (only / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    done = _run(MEASURE, stubs, PCR0=GOOD_PCR0, PATH=f"{stubs / 'bin'}:{only}")
    assert done.returncode == 2
    assert "needs Docker and the Nitro Enclaves CLI" in done.stderr
    assert "docker is not on PATH" in done.stderr


def test_the_scripts_pass_shellcheck() -> None:
    command = [tool("shellcheck"), str(BUILD_EIF), str(MEASURE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    assert os.access(BUILD_EIF, os.X_OK)

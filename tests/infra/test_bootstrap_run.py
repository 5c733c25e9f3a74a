"""bootstrap.sh run end to end with stub commands, in an environment like cloud-final's (no HOME, bare PATH).

The stubs stand in for what exists only on the instance; the one whose rule matters here, nitro-cli, enforces
it as the real tool does. Everything the script writes goes to a scratch directory."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.constants import HOST_FILES_DIR
from tests.infra.cfn import Json
from tests.infra.test_host_files import user_data_parts

STUB_PCR0 = "5e" * 48
DNF_ERROR = "Error: Unable to find a match: aws-nitro-enclaves-cli"
MEASUREMENTS = {"HashAlgorithm": "Sha384 { ... }", "PCR0": STUB_PCR0, "PCR1": "01" * 48, "PCR2": "02" * 48}

# nitro-cli build-enclave needs NITRO_CLI_ARTIFACTS, else HOME (then $HOME/.nitro_cli/), and creates the
# directory; with neither set it fails with E51 (artifacts_path(), src/lib.rs of aws/aws-nitro-enclaves-cli).
# The measurements JSON goes to stdout, progress to stderr.
NITRO_CLI = """#!/bin/sh
[ "$1" = build-enclave ] || exit 0
if [ -n "${NITRO_CLI_ARTIFACTS+set}" ]; then artifacts="$NITRO_CLI_ARTIFACTS"
elif [ -n "${HOME+set}" ]; then artifacts="$HOME/.nitro_cli/"
else
  echo '[ E51 ] Artifacts path environment variable not set.' >&2
  exit 1
fi
mkdir -p "$artifacts" || exit 1
echo "artifacts=$artifacts" >> "$RECORD"
echo 'Start building the Enclave Image...' >&2
echo '{"Measurements": MEASUREMENTS}'
"""
# python3.11 -m venv DIR leaves a python that answers every `-m` call with success.
PYTHON = """#!/bin/sh
if [ "$2" = venv ]; then
  mkdir -p "$3/bin" && printf '#!/bin/sh\\nexit 0\\n' > "$3/bin/python" && chmod +x "$3/bin/python"
fi
"""
# The body is curl's next-to-last argument (the last is the signal URL).
CURL = '#!/bin/sh\nfor a; do body="$url"; url="$a"; done\necho "$body" >> "$SIGNALS"\n'
# What PATH cannot reach: the builtin `test -c` of the Nitro device, and the CloudWatch agent's absolute path.
BASH_ENV = """test() { if [ "$*" = "-c /dev/nitro_enclaves" ]; then return 0; fi; builtin test "$@"; }
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl() { return 0; }
"""


@dataclass(frozen=True)
class Run:
    returncode: int
    stderr: str
    signals: list[Json]
    record: list[str]
    home_dir: Path


def run_bootstrap(template: Json, tmp_path: Path, *, dnf_exit: int = 0, on_nitro: bool = True) -> Run:
    """Run the real bootstrap.sh with stubs; `on_nitro` pretends /dev/nitro_enclaves exists."""
    conf, home_dir, stubs = tmp_path / "conf", tmp_path / "home", tmp_path / "bin"
    for directory in (conf, home_dir, stubs):
        directory.mkdir()
    (conf / "demo.env").write_text(user_data_parts(template)["DemoEnv"])
    scripts = {
        "dnf": f"#!/bin/sh\n[ {dnf_exit} = 0 ] || echo '{DNF_ERROR}' >&2\nexit {dnf_exit}\n",
        "curl": CURL,
        "nitro-cli": NITRO_CLI.replace("MEASUREMENTS", json.dumps(MEASUREMENTS)),
        "python3.11": PYTHON,
        "aws": '#!/bin/sh\necho "aws $*" >> "$AWS_CALLS"\n',
        **dict.fromkeys(("systemctl", "install", "docker"), "#!/bin/sh\nexit 0\n"),
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (tmp_path / "bash_env").write_text(BASH_ENV)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "SIGNAL_URL": "https://example.invalid/signal",
        "NITRO_ENCLAVE_DEMO_CONF_DIR": str(conf),
        "NITRO_ENCLAVE_DEMO_HOME_DIR": str(home_dir),
        "SIGNALS": str(tmp_path / "signals"),
        "RECORD": str(tmp_path / "record"),
        "AWS_CALLS": str(tmp_path / "aws_calls"),
    }
    if on_nitro:
        env["BASH_ENV"] = str(tmp_path / "bash_env")
    result = subprocess.run(
        ["/bin/bash", str(HOST_FILES_DIR / "bootstrap.sh")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    signals, record = tmp_path / "signals", tmp_path / "record"
    return Run(
        returncode=result.returncode,
        stderr=result.stderr,
        signals=[json.loads(line) for line in signals.read_text().splitlines()] if signals.exists() else [],
        record=record.read_text().splitlines() if record.exists() else [],
        home_dir=home_dir,
    )


def test_bootstrap_failure_signals_the_failed_step(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, dnf_exit=1)
    assert run.returncode != 0
    (signal,) = run.signals
    assert signal["Status"] == "FAILURE"
    assert signal["Reason"].startswith("install the Nitro CLI, Docker, Python 3.11 and jq with dnf failed")


def test_bootstrap_refuses_an_instance_without_enclave_support(template: Json, tmp_path: Path) -> None:
    if Path("/dev/nitro_enclaves").exists():
        pytest.skip("this machine has Nitro Enclaves")
    run = run_bootstrap(template, tmp_path, on_nitro=False)
    assert run.returncode != 0
    (signal,) = run.signals
    assert signal["Status"] == "FAILURE"
    assert "check enclave support: /dev/nitro_enclaves" in signal["Reason"]


def test_bootstrap_without_home_builds_the_eif_and_signals_its_pcr0(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert "E51" not in run.stderr
    assert run.returncode == 0, run.stderr[-2000:]
    (signal,) = run.signals
    assert (signal["Status"], signal["Data"]) == ("SUCCESS", STUB_PCR0)


def test_nitro_cli_keeps_its_artifacts_in_the_demos_own_directory(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert run.record == [f"artifacts={run.home_dir}/nitro-cli-artifacts"]
    assert (run.home_dir / "nitro-cli-artifacts").is_dir()


def test_a_failure_signal_carries_the_failed_steps_own_output(template: Json, tmp_path: Path) -> None:
    # A failed first deploy rolls back: the instance and its log group are deleted, the stack events stay.
    run = run_bootstrap(template, tmp_path, dnf_exit=1)
    (signal,) = run.signals
    assert signal["Reason"].endswith(f"last output: {DNF_ERROR} | ")
    assert "--no-rollback" in signal["Reason"]


def test_the_bootstrap_writes_no_parameter_cloudformation_owns(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    calls = tmp_path / "aws_calls"
    assert not [c for c in (calls.read_text().splitlines() if calls.exists() else []) if "put-parameter" in c]

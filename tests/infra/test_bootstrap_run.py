"""bootstrap.sh run end to end with stub commands, in an environment like cloud-final's (no HOME, bare PATH).

The stubs stand in for what exists only on a host; those whose rules matter here enforce them as the real
tools do: the AWS CLI's `s3api get-object` serves exactly one object version and `cloudformation
signal-resource` takes the API's parameters with its UniqueId limit (1-64 characters, botocore's model of
SignalResource, data/cloudformation/2010-05-15/service-2.json) and, with SIGNAL_REFUSED set, refuses as
CloudFormation does when no stack operation waits (the message rehearsal/cfn_signals.py gives); nitro-cli's
`describe-eif` prints the EIF's measurements as JSON under "Measurements" and its CRC check as "CheckCRC"
(EifDescribeInfo in src/common/json_output.rs of aws/aws-nitro-enclaves-cli). dnf, systemctl, docker and
the venv's python (the ping, the canary) record each call in one ordered log. Everything the script writes
goes to a scratch directory."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.constants import HOST_FILES_DIR, INSTALL_DIR
from tests.infra.cfn import Json, only
from tests.infra.demo_env import realistic
from tests.infra.test_host_files import user_data_parts

STUB_PCR0 = "5e" * 48
OTHER_PCR0 = "7f" * 48
INSTANCE_ID = "i-0123456789abcdef0"
EIF_KEY = "eif/" + "ab" * 32 + ".eif"
EIF_VERSION = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
DNF_ERROR = "Error: Unable to find a match: aws-nitro-enclaves-cli"
NOT_WAITING = (
    "An error occurred (ValidationError) when calling the SignalResource operation: Stack "
    "arn:aws:cloudformation:eu-west-1:123456789012:stack/NitroEnclaveDemo/1 is in UPDATE_COMPLETE state and "
    "cannot be signaled"
)
RELAY_START = "systemctl enable --now nitro-enclave-demo-relay.service"
RELAY_STOP = "systemctl disable --now nitro-enclave-demo-relay.service"
KMS_ANSWER = "AccessDeniedException: the key policy refused this attestation (statement DenyDecrypt...)"

# The AWS CLI: `s3api get-object` writes the one stored version to its outfile (the last argument) and
# answers NoSuchVersion for any other; `cloudformation signal-resource` records one signal per call.
AWS = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
with open(os.environ["AWS_CALLS"], "a") as calls:
    calls.write(" ".join(args) + "\n")
def opt(name):
    return args[args.index(name) + 1] if name in args else None
THROTTLED = ("An error occurred (Throttling) when calling the SignalResource operation (reached max retries: "
             "2): Rate exceeded")
def _fails_left(name):
    # the first $name calls fail (a count in the file ${name}_FILE)
    path = os.environ[name + "_FILE"]
    done = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(done + 1))
    return done < int(os.environ.get(name, "0"))
if args[:2] == ["s3api", "get-object"]:
    if (opt("--key"), opt("--version-id")) != (os.environ["STORED_KEY"], os.environ["STORED_VERSION"]):
        sys.exit("An error occurred (NoSuchVersion) when calling the GetObject operation")
    with open(args[-1], "w") as out:
        json.dump({"PCR0": os.environ["EIF_PCR0"]}, out)
    print(json.dumps({"VersionId": opt("--version-id")}))
elif args[:2] == ["cloudformation", "signal-resource"]:
    signal = {k: opt(f"--{o}") for k, o in (("StackName", "stack-name"), ("LogicalResourceId",
              "logical-resource-id"), ("UniqueId", "unique-id"), ("Status", "status"))}
    if None in signal.values() or not 1 <= len(signal["UniqueId"]) <= 64:
        sys.exit("An error occurred (ValidationError) when calling the SignalResource operation")
    if signal["Status"] not in ("SUCCESS", "FAILURE"):
        sys.exit("An error occurred (ValidationError) when calling the SignalResource operation")
    if os.environ.get("SIGNAL_REFUSED"):
        sys.exit(os.environ["NOT_WAITING"])
    if _fails_left("SIGNAL_FAILS"):
        sys.exit(THROTTLED)
    with open(os.environ["SIGNALS"], "a") as out:
        out.write(json.dumps(signal) + "\n")
"""
NITRO_CLI = r"""#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
if args[0] == "describe-eif":
    with open(args[args.index("--eif-path") + 1]) as eif:
        pcr0 = json.load(eif)["PCR0"]
    print(json.dumps({"EifVersion": 4, "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr0,
                      "PCR1": "01" * 48, "PCR2": "02" * 48}, "IsSigned": False,
                      "CheckCRC": os.environ["EIF_CRC_OK"] == "1"}, indent=2))
"""
# dnf, systemctl and docker: one line per call, in order, in COMMANDS (dnf exits DNF_EXIT with its error).
RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >>"$COMMANDS"
if [ "$(basename "$0")" = dnf ] && [ "$DNF_EXIT" != 0 ]; then echo "$DNF_ERROR" >&2; exit "$DNF_EXIT"; fi
exit 0
"""
DOCKER_MASK = "systemctl mask --now docker.service docker.socket"
# IMDSv2: a PUT for the session token, then the instance id with that token; the first IMDS_FAILS token
# requests fail as curl --fail does on an HTTP error (exit 22).
CURL = f"""#!/bin/sh
n=$(cat "$IMDS_FAILS_FILE" 2>/dev/null || echo 0); echo $((n + 1)) >"$IMDS_FAILS_FILE"
case "$*" in *api/token*) [ "$n" -lt "$IMDS_FAILS" ] && exit 22 ;; esac
case "$*" in
  *api/token*) echo token-1 ;;
  *"X-aws-ec2-metadata-token: token-1"*meta-data/instance-id*) echo {INSTANCE_ID} ;;
  *) exit 22 ;;
esac
"""
# python3.11 -m venv DIR leaves a python whose `-m app.parent canary` passes unless CANARY_FAILS is set,
# and every other `-m` call succeeds.
VENV_PYTHON = f"""#!/bin/sh
echo "python $*" >>"$COMMANDS"
case "$*" in
  *"app.parent canary"*)
    if [ -n "$CANARY_FAILS" ]; then echo "canary failed: access_denied: {KMS_ANSWER}" >&2; exit 1; fi
    echo "canary ok: this host's enclave decrypted the test card ending 1111" ;;
esac
exit 0
"""
PYTHON = """#!/bin/sh
if [ "$2" = venv ]; then
  mkdir -p "$3/bin" && cp "$VENV_PYTHON_STUB" "$3/bin/python" && chmod +x "$3/bin/python"
fi
"""
# sleep: the bootstrap's waits between tries pass at once (recorded in SLEEPS); its short polls (under 1 s)
# really sleep.
SLEEP = """#!/bin/sh
case "$1" in 0.*) exec /bin/sleep "$1" ;; esac
echo "$1" >>"$SLEEPS"
"""
# What PATH cannot reach: the builtin `test -c` of the Nitro device, and the CloudWatch agent's absolute path.
BASH_ENV = """test() { if [ "$*" = "-c /dev/nitro_enclaves" ]; then return 0; fi; builtin test "$@"; }
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl() { return 0; }
"""


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str  # stdout and stderr: the script sends both through tee to its boot log
    signals: list[Json]
    aws_calls: list[str]
    home_dir: Path
    commands: list[str]  # dnf, systemctl and docker calls, in order
    sleeps: list[str]  # the waits of 1 s or more, in order


def _demo_env(template: Json, home_dir: Path, eif_version: str = EIF_VERSION) -> str:
    """The rendered demo.env with the build's attributes as CloudFormation would fill them in, and the EIF's
    path moved into the scratch home directory."""
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    text = user_data_parts(template)["DemoEnv"]
    bundle = (("BundleKey", f"bundle/{'0' * 64}.tar.gz"), ("BundleVersion", "b1"), ("BundleSha256", "0" * 64))
    for attribute, value in (("Pcr0", STUB_PCR0), ("EifKey", EIF_KEY), ("EifVersion", eif_version), *bundle):
        text = text.replace(f"getatt-{build_id}-{attribute}", value)
    eif_line = f"ENCLAVE_EIF={INSTALL_DIR}/enclave.eif\n"
    assert text.count(eif_line) == 1
    return realistic(text.replace(eif_line, f"ENCLAVE_EIF={home_dir}/enclave.eif\n"))


def run_bootstrap(
    template: Json,
    tmp_path: Path,
    *,
    dnf_exit: int = 0,
    on_nitro: bool = True,
    eif_pcr0: str = STUB_PCR0,
    eif_crc_ok: bool = True,
    canary_fails: bool = False,
    signal_refused: bool = False,
    eif_version: str = EIF_VERSION,
    signal_fails: int = 0,
    imds_fails: int = 0,
) -> Run:
    """Run the real bootstrap.sh with stubs; `on_nitro` pretends /dev/nitro_enclaves exists."""
    conf, home_dir, stubs = tmp_path / "conf", tmp_path / "home", tmp_path / "bin"
    for directory in (conf, home_dir, stubs):
        directory.mkdir()
    (conf / "demo.env").write_text(_demo_env(template, home_dir, eif_version))
    # The host files where the user data unpacks the host bundle (the reader and its patterns among them).
    (home_dir / "src/infra/constructs").mkdir(parents=True)
    (home_dir / "src/infra/constructs/host").symlink_to(HOST_FILES_DIR)
    scripts = {
        "curl": CURL,
        "aws": AWS,
        "nitro-cli": NITRO_CLI,
        "python3.11": PYTHON,
        "venv-python": VENV_PYTHON,
        "install": "#!/bin/sh\nexit 0\n",
        "sleep": SLEEP,
        **dict.fromkeys(("dnf", "systemctl", "docker", "dockerd"), RECORDER),
    }
    for name, text in scripts.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (tmp_path / "bash_env").write_text(BASH_ENV)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "NITRO_ENCLAVE_DEMO_CONF_DIR": str(conf),
        "NITRO_ENCLAVE_DEMO_HOME_DIR": str(home_dir),
        "SIGNALS": str(tmp_path / "signals"),
        "AWS_CALLS": str(tmp_path / "aws_calls"),
        "STORED_KEY": EIF_KEY,
        "STORED_VERSION": EIF_VERSION,
        "EIF_PCR0": eif_pcr0,
        "EIF_CRC_OK": "1" if eif_crc_ok else "0",
        "COMMANDS": str(tmp_path / "commands"),
        "DNF_EXIT": str(dnf_exit),
        "DNF_ERROR": DNF_ERROR,
        "VENV_PYTHON_STUB": str(stubs / "venv-python"),
        "NOT_WAITING": NOT_WAITING,
        "SIGNAL_FAILS": str(signal_fails),
        "SIGNAL_FAILS_FILE": str(tmp_path / "signal_fails"),
        "IMDS_FAILS": str(imds_fails),
        "IMDS_FAILS_FILE": str(tmp_path / "imds_fails"),
        "SLEEPS": str(tmp_path / "sleeps"),
        **({"CANARY_FAILS": "1"} if canary_fails else {}),
        **({"SIGNAL_REFUSED": "1"} if signal_refused else {}),
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
    signals, calls, commands = tmp_path / "signals", tmp_path / "aws_calls", tmp_path / "commands"
    return Run(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        signals=[json.loads(line) for line in signals.read_text().splitlines()] if signals.exists() else [],
        aws_calls=calls.read_text().splitlines() if calls.exists() else [],
        home_dir=home_dir,
        commands=commands.read_text().splitlines() if commands.exists() else [],
        sleeps=sleeps.read_text().splitlines() if (sleeps := tmp_path / "sleeps").exists() else [],
    )


def test_a_good_boot_signals_success_with_the_instance_id(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert run.returncode == 0, run.output[-2000:]
    group_id, _ = only(template, "AWS::AutoScaling::AutoScalingGroup")
    assert run.signals == [
        {
            "StackName": "NitroEnclaveDemo",
            "LogicalResourceId": group_id,
            "UniqueId": INSTANCE_ID,
            "Status": "SUCCESS",
        }
    ]
    assert "canary ok: this host's enclave decrypted the test card ending 1111" in run.output


def test_the_relay_starts_only_after_the_canary_passed(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert run.returncode == 0, run.output[-2000:]
    order = run.commands
    enclave = order.index("systemctl enable --now nitro-enclave-demo-enclave.service")
    (ping,) = [i for i, c in enumerate(order) if c == "python -m app.parent ping"]
    (canary,) = [i for i, c in enumerate(order) if c.startswith("python -m app.parent canary")]
    assert enclave < ping < canary < order.index(RELAY_START)
    assert RELAY_STOP not in order


def test_a_failed_canary_leaves_the_relay_never_started(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, canary_fails=True)
    assert run.returncode != 0
    assert RELAY_START not in run.commands
    # Stopped and disabled all the same: nothing after the enclave start may leave it serving.
    assert RELAY_STOP in run.commands
    assert "nitro-enclave-demo-relay.service stopped: this host takes no cards" in run.output


def test_a_replacement_host_serves_after_its_canary_and_ends_cleanly(template: Json, tmp_path: Path) -> None:
    # Launched by the group outside a stack operation: CloudFormation refuses the signal, and the boot
    # still ends "done" with exit 0 (cloud-init would mark a nonzero exit as a failed boot).
    run = run_bootstrap(template, tmp_path, signal_refused=True)
    assert run.returncode == 0, run.output[-2000:]
    assert run.signals == []
    assert [c for c in run.aws_calls if c.startswith("cloudformation signal-resource")]
    assert NOT_WAITING in run.output
    assert "SUCCESS not signalled: no stack operation waits for this host" in run.output
    assert run.output.rstrip().endswith("nitro-enclave-demo bootstrap: done")
    assert RELAY_START in run.commands
    assert RELAY_STOP not in run.commands


def test_a_replacement_host_whose_canary_fails_stays_stopped(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, canary_fails=True, signal_refused=True)
    assert run.returncode != 0
    assert run.signals == []
    assert RELAY_START not in run.commands
    assert RELAY_STOP in run.commands
    assert "boot FAILED and not signalled: no stack operation waits for this host" in run.output
    assert "bootstrap: done" not in run.output


def test_a_forged_build_value_is_refused_at_config_and_its_command_never_runs(
    template: Json, tmp_path: Path
) -> None:
    # An EifVersion that a forged custom resource answer could carry, had the handler not checked it.
    marker = tmp_path / "forged-config-ran"
    run = run_bootstrap(template, tmp_path, eif_version=f"v1$(touch {marker})")
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} config: EIF_VERSION")
    assert "EIF_VERSION is not of its form (demo-env.patterns)" in run.output
    assert not marker.exists()
    assert run.commands == []  # nothing installed, nothing started


def test_the_host_downloads_exactly_the_built_version(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    (download,) = [c for c in run.aws_calls if c.startswith("s3api get-object")]
    assert f"--key {EIF_KEY} --version-id {EIF_VERSION}" in download
    assert download.endswith(f"{run.home_dir}/enclave.eif")
    assert json.loads((run.home_dir / "enclave.eif").read_text()) == {"PCR0": STUB_PCR0}


def test_a_wrong_pcr0_is_refused_and_signals_failure(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, eif_pcr0=OTHER_PCR0)
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} pcr0: wrong-pcr0")
    assert f"its PCR0 is {OTHER_PCR0}, the pin is {STUB_PCR0}" in run.output
    assert "step: canary" not in run.output  # refused before the enclave starts


def test_a_failed_canary_signals_failure_naming_kms_answer(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, canary_fails=True)
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} canary: access_denied")
    assert len(signal["UniqueId"]) <= 64
    assert KMS_ANSWER in run.output  # the full answer, in the log the CloudWatch agent ships


def test_a_failed_step_signals_failure_with_its_id_and_output(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, dnf_exit=1)
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} dnf: exit 1")
    report = [line for line in run.output.splitlines() if "failure report:" in line]
    assert report
    assert report[0].endswith(f"last output: {DNF_ERROR} | ")
    assert "--no-rollback" in report[0]


def test_bootstrap_refuses_an_instance_without_enclave_support(template: Json, tmp_path: Path) -> None:
    if Path("/dev/nitro_enclaves").exists():
        pytest.skip("this machine has Nitro Enclaves")
    run = run_bootstrap(template, tmp_path, on_nitro=False)
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} enclave-support: exit 1")


def test_the_bootstrap_writes_no_parameter_and_builds_nothing(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path)
    assert run.returncode == 0, run.output[-2000:]
    assert not [c for c in run.aws_calls if "put-parameter" in c]
    assert not (run.home_dir / "nitro-cli-artifacts").exists()


def test_docker_is_masked_right_after_the_install_and_never_run(template: Json, tmp_path: Path) -> None:
    # The Nitro CLI RPM requires the docker package (SPECS/aws-nitro-enclaves-cli.spec), so dnf installs it;
    # the host masks its daemon and socket before anything else touches systemd, and never runs docker.
    run = run_bootstrap(template, tmp_path)
    assert run.returncode == 0, run.output[-2000:]
    assert run.commands[0].startswith("dnf install -y -q aws-nitro-enclaves-cli ")
    assert run.commands[1] == DOCKER_MASK
    others = [c for c in run.commands[2:] if "docker" in c and not c.startswith("python ")]  # tmp path
    assert others == [], others
    assert not [c for c in run.commands if c.split()[0] in ("docker", "dockerd")]


def test_an_eif_failing_its_crc_check_is_refused_before_the_pcr0(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, eif_crc_ok=False)
    assert run.returncode != 0
    (signal,) = run.signals
    assert (signal["Status"], signal["UniqueId"]) == ("FAILURE", f"{INSTANCE_ID} eif-crc: bad-crc")
    assert "nitro-cli describe-eif reports CheckCRC false, not true" in run.output
    assert "step: check the EIF's PCR0" not in run.output
    assert "systemctl enable --now nitro-enclave-demo-enclave.service" not in run.commands  # never started


def test_the_real_systemctl_masks_an_installed_inactive_docker(tmp_path: Path) -> None:
    # systemctl(1), "mask": links the unit name under /etc/systemd/system to /dev/null, which works for a
    # vendor unit in /usr/lib/systemd/system, installed or not, running or not. Here against a scratch root
    # (--root; --now needs a running manager, which a host has): a docker.service as an RPM installs it, and
    # no docker.socket at all. Both end up "masked".
    vendor = tmp_path / "usr/lib/systemd/system"
    vendor.mkdir(parents=True)
    (tmp_path / "etc/systemd/system").mkdir(parents=True)
    (vendor / "docker.service").write_text(
        "[Service]\nExecStart=/usr/bin/dockerd\n[Install]\nWantedBy=multi-user.target\n"
    )
    units = DOCKER_MASK.split()[3:]
    assert units == ["docker.service", "docker.socket"]
    subprocess.run(["systemctl", f"--root={tmp_path}", "mask", *units], check=True, capture_output=True)
    state = subprocess.run(
        ["systemctl", f"--root={tmp_path}", "is-enabled", *units], capture_output=True, text=True, check=False
    )
    assert state.stdout.split() == ["masked", "masked"]
    assert all((tmp_path / "etc/systemd/system" / unit).readlink() == Path("/dev/null") for unit in units)


THROTTLED = "(Throttling) when calling the SignalResource operation (reached max retries: 2): Rate exceeded"


def test_a_throttled_signal_is_tried_again_and_the_host_serves(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, signal_fails=4)
    assert run.returncode == 0, run.output[-2000:]
    assert [s["Status"] for s in run.signals] == ["SUCCESS"]
    assert THROTTLED in run.output
    assert "signal SUCCESS not taken (attempt 4 of 5); trying again in 16 s" in run.output
    assert run.sleeps[-4:] == ["2", "4", "8", "16"]
    assert RELAY_STOP not in run.commands


def test_a_signal_refused_five_times_fails_the_boot_and_stops_the_relay(
    template: Json, tmp_path: Path
) -> None:
    run = run_bootstrap(template, tmp_path, signal_fails=99)
    assert run.returncode != 0
    assert len([c for c in run.aws_calls if c.startswith("cloudformation signal-resource")]) >= 5
    assert "CloudFormation did not take the SUCCESS signal" in run.output
    assert RELAY_STOP in run.commands
    # Nobody waits for this host's signal: the line the stack's BootFailureAlarm counts.
    assert "boot FAILED and not signalled: could not signal FAILURE to " in run.output


def test_cannot_be_signaled_is_not_tried_again(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, signal_refused=True)
    assert run.returncode == 0, run.output[-2000:]
    assert len([c for c in run.aws_calls if c.startswith("cloudformation signal-resource")]) == 1


def test_a_failing_imds_is_tried_again_and_the_signal_carries_the_id(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, imds_fails=2)
    assert run.returncode == 0, run.output[-2000:]
    assert [s["UniqueId"] for s in run.signals] == [INSTANCE_ID]


def test_no_instance_id_fails_clearly_and_never_signals_an_empty_id(template: Json, tmp_path: Path) -> None:
    run = run_bootstrap(template, tmp_path, imds_fails=99)
    assert run.returncode != 0
    assert not [c for c in run.aws_calls if c.startswith("cloudformation signal-resource")]
    assert "no instance id from IMDS (http://169.254.169.254/latest) after 5 attempts" in run.output
    assert RELAY_STOP in run.commands

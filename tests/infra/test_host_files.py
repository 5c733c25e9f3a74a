"""The host's real files, rendered as CloudFormation renders them: shellcheck, systemd-analyze, YAML, env."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.parent import canary
from app.shared import deployment
from infra.constants import HOST_FILES_DIR
from infra.settings import MIN_BOOT_TIMEOUT_MINUTES
from tests.infra.cfn import Json, card_key, evaluate, only
from tests.infra.conftest import PCR0_GIVEN, Synth
from tests.infra.demo_env import systemd_reads_literally

CONTRACT_ENV = {
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "CARDS_QUEUE_URL",
    "RESULTS_QUEUE_URL",
    "DEAD_LETTER_QUEUE_URL",
    "KMS_KEY_ID",
    "ENCRYPTION_CONTEXT",
    "ENCLAVE_CID",
    "ENCLAVE_PORT",
    "ENCLAVE_URL",
}
UNITS = (
    "nitro-enclave-demo-enclave.service",
    "nitro-enclave-demo-relay.service",
    "nitro-enclave-demo-logs.service",
)
JOURNAL_TEMPLATE = "nitro-enclave-demo-journal@.service"
JOURNAL_INSTANCE = "nitro-enclave-demo-journal@nitro-enclave-demo-relay.service"
SYSTEM_UNIT_DIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run `make tools` (Debian packages shellcheck and systemd)")
    return path


def user_data_parts(template: Json) -> dict[str, str]:
    """The launch template's user data and each file it writes, rendered as CloudFormation would."""
    _, launch_template = only(template, "AWS::EC2::LaunchTemplate")
    user_data = launch_template["Properties"]["LaunchTemplateData"]["UserData"]
    _, variables = user_data["Fn::Base64"]["Fn::Sub"]
    parts = {name: evaluate(value) for name, value in variables.items()}
    parts["user-data.sh"] = evaluate(user_data)
    return parts


def env_file(template: Json, tmp_path: Path) -> dict[str, str]:
    """The rendered demo.env as systemd's EnvironmentFile= reads it (never sourced: it is data): KEY=VALUE
    per line, comments skipped, every value one systemd reads literally (tests/infra/demo_env.py)."""
    pairs = {}
    for line in user_data_parts(template)["DemoEnv"].splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        assert systemd_reads_literally(value), line
        pairs[key] = value
    return pairs


def shellcheck(path: Path) -> None:
    result = subprocess.run(
        [tool("shellcheck"), "-s", "bash", "-x", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_user_data_fits_the_ec2_limit(template: Json) -> None:
    assert len(user_data_parts(template)["user-data.sh"].encode()) < 16 * 1024


def test_rendered_user_data_passes_shellcheck(template: Json, tmp_path: Path) -> None:
    path = tmp_path / "user-data.sh"
    path.write_text(user_data_parts(template)["user-data.sh"])
    shellcheck(path)


@pytest.mark.parametrize("name", ["bootstrap.sh", "enclave-run.sh", "nitro-demo.sh"])
def test_static_scripts_pass_shellcheck(name: str) -> None:
    shellcheck(HOST_FILES_DIR / name)


def test_bootstrap_enables_allocator_and_proxy_after_writing_their_config() -> None:
    text = (HOST_FILES_DIR / "bootstrap.sh").read_text()
    order = [
        '"$CW_AGENT_CTL" -a fetch-config',  # logs ship from the first step that can fail for a Nitro reason
        'install -m 0644 "$CONF_DIR/allocator.yaml" /etc/nitro_enclaves/allocator.yaml',
        "systemctl enable --now nitro-enclaves-allocator.service",
        "systemctl enable --now nitro-enclaves-vsock-proxy.service",
        'aws s3api get-object --region "$AWS_REGION" --bucket "$EIF_BUCKET" --key "$EIF_KEY" --version-id',
        'nitro-cli describe-eif --eif-path "$ENCLAVE_EIF"',
        "systemctl enable --now nitro-enclave-demo-logs.service",
        "systemctl enable --now nitro-enclave-demo-enclave.service",
        "-m app.parent ping",
        '"$VENV_DIR/bin/python" -m app.parent canary',
        'systemctl enable --now "$RELAY_UNIT"',  # a host takes cards only once its canary passed
        '"$VENV_DIR/bin/python" -m app.ops doctor ||',
        "signal SUCCESS",
    ]
    positions = [text.index(line) for line in order]
    assert positions == sorted(positions)


def test_allocator_yaml_starts_with_document_marker_and_parses(template: Json) -> None:
    text = user_data_parts(template)["AllocatorYaml"]
    assert text.startswith("---\n")
    assert yaml.safe_load(text) == {"memory_mib": 3072, "cpu_count": 2}


def test_vsock_proxy_allowlist_is_the_regions_kms_only(template: Json) -> None:
    text = user_data_parts(template)["VsockProxyYaml"]
    assert yaml.safe_load(text) == {
        "allowlist": [
            {"address": "kms.us-east-1.amazonaws.com", "port": 443},
            {"address": "kms-fips.us-east-1.amazonaws.com", "port": 443},
        ]
    }


def test_env_file_has_the_contract_names_and_values(template: Json, tmp_path: Path) -> None:
    env = env_file(template, tmp_path)
    assert set(env) >= CONTRACT_ENV
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["KMS_KEY_ID"] == f"getatt-{card_key(template)[0]}-Arn"  # the key's ARN, never the alias
    assert json.loads(env["ENCRYPTION_CONTEXT"]) == {"app": "nitro-enclave-demo"}
    assert (env["ENCLAVE_CID"], env["ENCLAVE_PORT"], env["ENCLAVE_URL"]) == ("16", "5000", "vsock://16:5000")
    assert env["ENCLAVE_DEBUG"] == "false"
    assert env["CARDS_QUEUE_URL"].startswith("ref-QueuesCardsQueue")


def test_env_file_names_the_exact_eif_the_build_produced(template: Json, tmp_path: Path) -> None:
    env = env_file(template, tmp_path)
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    bucket_id, _ = only(template, "AWS::S3::Bucket")
    assert env["EIF_BUCKET"] == f"ref-{bucket_id}"
    assert (env["EIF_KEY"], env["EIF_VERSION"]) == (
        f"getatt-{build_id}-EifKey",
        f"getatt-{build_id}-EifVersion",
    )
    assert env["EXPECTED_PCR0"] == f"getatt-{build_id}-Pcr0"


def test_env_file_carries_debug_mode_and_always_the_builds_pcr0(
    debug: Synth, given_pcr0: Synth, template: Json, tmp_path: Path
) -> None:
    assert env_file(debug.template, tmp_path)["ENCLAVE_DEBUG"] == "true"
    # -c enclave_pcr0 is an assertion the build checks; the host always expects what the build reports.
    given = env_file(given_pcr0.template, tmp_path)["EXPECTED_PCR0"]
    assert given == env_file(template, tmp_path)["EXPECTED_PCR0"] != PCR0_GIVEN


def _scratch_root(root: Path) -> Path:
    """A directory tree systemd-analyze can verify against without systemd running (containers, CI)."""
    system_units = next(d for d in SYSTEM_UNIT_DIRS if (d / "sysinit.target").exists())
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    etc_units = root / "etc/systemd/system"
    etc_units.mkdir(parents=True)
    for name in (*UNITS, JOURNAL_TEMPLATE):
        shutil.copy(HOST_FILES_DIR / name, etc_units / name)
    (etc_units / JOURNAL_INSTANCE).symlink_to(JOURNAL_TEMPLATE)
    # Stand-ins for what the Nitro CLI package and bootstrap.sh install on the instance.
    for name, command in {
        "nitro-enclaves-allocator.service": "/usr/bin/nitro-cli --version",
        "nitro-enclaves-vsock-proxy.service": "/usr/bin/vsock-proxy 8000 kms.us-east-1.amazonaws.com 443",
    }.items():
        (etc_units / name).write_text(f"[Unit]\nDescription=stub\n[Service]\nExecStart={command}\n")
    drop_in = etc_units / "nitro-enclaves-vsock-proxy.service.d"
    drop_in.mkdir()
    shutil.copy(HOST_FILES_DIR / "vsock-proxy.override.conf", drop_in / "override.conf")
    for executable in (
        "usr/bin/nitro-cli",
        "usr/bin/vsock-proxy",
        "usr/bin/journalctl",
        "opt/nitro-enclave-demo/bin/enclave-run.sh",
        "opt/nitro-enclave-demo/venv/bin/python",
    ):
        path = root / executable
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (root / "etc/nitro-enclave-demo").mkdir(parents=True)
    (root / "etc/nitro-enclave-demo/demo.env").write_text("AWS_REGION=us-east-1\n")
    return etc_units


def test_units_and_proxy_drop_in_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    etc_units = _scratch_root(tmp_path)
    names = (*UNITS, JOURNAL_INSTANCE, "nitro-enclaves-vsock-proxy.service")
    targets = [str(etc_units / name) for name in names]
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", "--man=no", "--generators=no", f"--root={tmp_path}", *targets],
        capture_output=True,
        text=True,
        check=False,
        env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "nitro" not in result.stderr, result.stderr


def test_units_read_the_one_env_file() -> None:
    for name in (*UNITS, "vsock-proxy.override.conf"):
        assert "EnvironmentFile=/etc/nitro-enclave-demo/demo.env" in (HOST_FILES_DIR / name).read_text()
    enclave = (HOST_FILES_DIR / "nitro-enclave-demo-enclave.service").read_text()
    assert "Restart=on-failure" in enclave
    assert "ExecStop=/usr/bin/nitro-cli terminate-enclave --enclave-name nitro-enclave-demo" in enclave
    relay = (HOST_FILES_DIR / "nitro-enclave-demo-relay.service").read_text()
    assert (
        "After=network-online.target nitro-enclave-demo-enclave.service nitro-enclaves-vsock-proxy.service"
        in relay
    )
    assert "ExecStart=/opt/nitro-enclave-demo/venv/bin/python -m app.parent run" in relay


def _systemd_expand(command_line: str, env: dict[str, str]) -> list[str]:
    """ExecStart= as systemd runs it: `${NAME}` becomes the variable's value as one word (systemd.service(5),
    "Command lines"); words are split on whitespace first. Unset variables expand to nothing."""
    words = command_line.split()
    return [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m[1], ""), word) for word in words]


def _vsock_proxy_workers(argv: list[str]) -> int:
    """`--num_workers`/`-w` of vsock-proxy, default 4 (clap definition in vsock_proxy/src/main.rs of
    aws/aws-nitro-enclaves-cli): `--num_workers N`, `--num_workers=N`, `-w N` or `-wN`."""
    workers = "4"
    for index, arg in enumerate(argv):
        if arg in ("--num_workers", "-w"):
            workers = argv[index + 1]
        elif arg.startswith("--num_workers="):
            workers = arg.split("=", 1)[1]
        elif arg.startswith("-w") and len(arg) > 2:
            workers = arg[2:]
    return int(workers)


def test_vsock_proxy_gets_a_worker_for_every_kms_connection_the_enclave_holds(
    template: Json, tmp_path: Path
) -> None:
    drop_in = (HOST_FILES_DIR / "vsock-proxy.override.conf").read_text().splitlines()
    exec_start = [line.removeprefix("ExecStart=") for line in drop_in if line.startswith("ExecStart=")][-1]
    argv = _systemd_expand(exec_start, env_file(template, tmp_path))
    assert argv[:4] == ["/usr/bin/vsock-proxy", "8000", "kms.us-east-1.amazonaws.com", "443"]
    assert _vsock_proxy_workers(argv) >= deployment.KMS_CONNECTIONS


def _unit_settings(name: str) -> dict[str, list[str]]:
    """A unit file's `Key=value` lines, every value of each key in order (systemd repeats keys)."""
    found: dict[str, list[str]] = {}
    for line in (HOST_FILES_DIR / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_every_start_of_the_relay_is_proven_by_the_canary_first() -> None:
    # The user data runs once per instance, the relay unit at every boot: its own start runs the canary
    # (ExecStartPre: a failure fails the start, ExecStart never runs; systemd.service(5)).
    relay = _unit_settings("nitro-enclave-demo-relay.service")
    venv_python = "/opt/nitro-enclave-demo/venv/bin/python"
    assert relay["ExecStartPre"] == [f"{venv_python} -m app.parent canary"]
    assert relay["ExecStart"] == [f"{venv_python} -m app.parent run"]
    # Long enough for the canary's propagation retries (their waits plus the attempts' own time).
    (timeout,) = relay["TimeoutStartSec"]
    assert int(timeout) > canary.RETRY_DEADLINE_S + 60
    # Requires=, not BindsTo=: an enclave restarted by its own unit must not leave the relay stopped for good
    # (a BindsTo= stop is no failure, so the relay's Restart= would never bring it back).
    assert relay["Requires"] == ["nitro-enclave-demo-enclave.service"]
    assert "BindsTo" not in relay
    assert "nitro-enclave-demo-enclave.service" in relay["After"][0].split()
    # A start whose canary keeps failing ends in the failed state instead of looping unseen.
    assert relay["StartLimitIntervalSec"] == ["3600"]
    assert relay["StartLimitBurst"] == ["10"]


def test_the_canary_deadline_fits_in_the_smallest_boot_timeout() -> None:
    # The boot's own waits, in order: the enclave unit's start, the pings, the canary (run by the bootstrap
    # and again by the relay's start); dnf and pip come on top.
    enclave_s = int(_unit_settings("nitro-enclave-demo-enclave.service")["TimeoutStartSec"][0])
    relay_s = int(_unit_settings("nitro-enclave-demo-relay.service")["TimeoutStartSec"][0])
    waits_s = enclave_s + 30 * 10 + canary.RETRY_DEADLINE_S + relay_s
    assert waits_s < MIN_BOOT_TIMEOUT_MINUTES * 60

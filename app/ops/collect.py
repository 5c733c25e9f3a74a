"""Runs the real tools on the parent instance (each with a timeout) and records their output.

The only module in app/ops that does I/O against the host. A tool that is missing, times out or
fails leaves its observation as None, which the checks report as "skip", never as a crash.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.keypolicy import pins
from app.keypolicy.grammar import PolicyGrammarError
from app.keypolicy.key_arn import KeyArnError, require_key_arn
from app.ops import host_checks
from app.parent.attest_report import Pin
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.shared import settings
from app.shared.protocol import Op

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 10.0
PING_TIMEOUT_S = 5.0
JOURNAL_LINES = 500
DEVICE = Path("/dev/nitro_enclaves")
MEMINFO = Path("/proc/meminfo")
VSOCK_PROXY_CONFIG = Path("/etc/nitro_enclaves/vsock-proxy.yaml")
SHOW_PROPERTIES = "Id,LoadState,ActiveState,SubState,Result,ExecMainStatus,NRestarts"
ENV_PINNED_PCR0 = "ENCLAVE_PCR0"
ENV_PINNED_PCR0_PARAMETER = "PINNED_PCR0_PARAMETER"
ENV_KMS_KEY_ID = settings.ENV_KMS_KEY_ID


@dataclass(frozen=True)
class Observations:
    """Everything doctor looks at; None where it could not be collected."""

    device_present: bool | None = None
    describe_enclaves: str | None = None
    systemctl_show: str | None = None
    enclave_journal: str | None = None
    allocator_journal: str | None = None
    meminfo: str | None = None
    df: str | None = None
    chrony: str | None = None
    vsock_proxy_config: str | None = None
    eif_bytes: int | None = None
    enclave_memory_mib: int | None = None
    enclave_cid: int | None = None
    region: str | None = None
    pinned_pcr0: str | None = None  # the accepted PCR0 values, comma-separated
    enclave_ping: Mapping[str, Any] | None = None  # the enclave's answer to a ping (its clock reading)


def run(command: Sequence[str], *, allow_failure: bool = False) -> str | None:
    """stdout of `command` (stdout+stderr if it failed and `allow_failure`), or None."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
            list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (subprocess.TimeoutExpired, OSError) as error:
        log.warning(
            "command failed", extra={"fields": {"command": command[0], "error": type(error).__name__}}
        )
        return None
    if done.returncode == 0:
        return done.stdout
    return done.stdout + done.stderr if allow_failure else None


def journal(*units: str) -> str | None:
    args = ["journalctl", "-b", "--no-pager", "-o", "cat", "-n", str(JOURNAL_LINES)]
    for unit in units:
        args += ["-u", unit]
    return run(args)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _size(path: str | None) -> int | None:
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


def pinned_pcr0(environ: Mapping[str, str], region: str | None) -> str | None:
    """The PCR0 values the key accepts, comma-separated: $ENCLAVE_PCR0, else the key policy itself
    ($KMS_KEY_ID, the key's ARN and never an alias: kms:DescribeKey, kms:GetKeyPolicy, both allowed to the
    host role; during a roll it accepts the new and the previous PCR0), else the SSM record of the build's
    PCR0 (one value; KMS never reads SSM)."""
    if environ.get(ENV_PINNED_PCR0):
        return environ[ENV_PINNED_PCR0]
    if not region:
        return None
    config = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 2})
    from_policy = _accepted_by_key_policy(environ.get(ENV_KMS_KEY_ID), region, config)
    if from_policy:
        return from_policy
    name = environ.get(ENV_PINNED_PCR0_PARAMETER)
    if not name:
        return None
    try:
        answer = boto3.client("ssm", region_name=region, config=config).get_parameter(Name=name)
    except (BotoCoreError, ClientError) as error:
        log.warning("pinned PCR0 not readable", extra={"fields": {"error": type(error).__name__}})
        return None
    return answer["Parameter"].get("Value")


def _accepted_by_key_policy(key_id: str | None, region: str, config: Config) -> str | None:
    if not key_id:
        return None
    try:
        key_arn = require_key_arn(key_id, region=region)
    except KeyArnError as error:  # never follow an alias: the SSM record (below) is read instead
        log.warning("key policy not read", extra={"fields": {"error": str(error)}})
        return None
    try:
        kms = boto3.client("kms", region_name=region, config=config)
        pin = Pin.from_key_policy(pins.read_key_policy(kms, key_arn))
    except (BotoCoreError, ClientError, PolicyGrammarError, ValueError, KeyError) as error:
        log.warning("key policy not readable", extra={"fields": {"error": type(error).__name__}})
        return None
    return ",".join(pin.values) or None


def ping(url: str) -> tuple[Mapping[str, Any] | None, str | None]:
    """The enclave's ping answer, or None and why not."""
    client = EnclaveClient(url, request_timeout_s=PING_TIMEOUT_S)
    try:
        return client.call(Op.PING), None
    except EnclaveError as error:
        return None, str(error)
    finally:
        client.close()


def enclave_ping(environ: Mapping[str, str]) -> Mapping[str, Any] | None:
    """The enclave's ping answer over $ENCLAVE_URL (default: vsock to the enclave), or None."""
    answer, _ = ping(environ.get(settings.ENV_ENCLAVE_URL) or settings.DEFAULT_ENCLAVE_URL)
    return answer


def collect(environ: Mapping[str, str] | None = None) -> Observations:
    env = os.environ if environ is None else environ
    region = env.get("AWS_REGION")
    describe = run(["nitro-cli", "describe-enclaves"], allow_failure=True)
    enclave_log = journal("nitro-enclave-demo-enclave.service")
    if describe is not None and "[ E" in describe:  # describe itself failed with an E-code
        enclave_log, describe = (enclave_log or "") + "\n" + describe, None
    return Observations(
        device_present=DEVICE.exists() if DEVICE.parent.exists() else None,
        describe_enclaves=describe,
        systemctl_show=run(["systemctl", "show", "-p", SHOW_PROPERTIES, *host_checks.DEMO_UNITS]),
        enclave_journal=enclave_log,
        allocator_journal=journal("nitro-enclaves-allocator.service"),
        meminfo=_read(MEMINFO),
        df=run(["df", "-Pk", "/"]),
        chrony=run(["chronyc", "tracking"]),
        vsock_proxy_config=_read(VSOCK_PROXY_CONFIG),
        eif_bytes=_size(env.get("ENCLAVE_EIF")),
        enclave_memory_mib=_int(env.get("ENCLAVE_MEMORY_MIB")),
        enclave_cid=_int(env.get("ENCLAVE_CID")),
        region=region,
        pinned_pcr0=pinned_pcr0(env, region),
        enclave_ping=enclave_ping(env),
    )

"""The parent instance's commands: `run` (the relay daemon), `ping` (is the enclave answering?),
`canary` (one test card through KMS Encrypt and this host's enclave: the boot's proof of the crypto path),
`attest` (verify the enclave's attestation and compare its PCR0 with the pin in the key policy, read with
kms:GetKeyPolicy) and `logs`
(write the enclave's own log lines, received over vsock, to stdout).

Options > environment (see app/shared/settings.py; the deployed host's /etc/nitro-enclave-demo/demo.env)
> defaults. Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.keypolicy import pins
from app.keypolicy.grammar import PolicyGrammarError
from app.keypolicy.key_arn import require_key_arn
from app.parent import attest_report, canary, log_sink, queues
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.parent.enclave_pool import EnclavePool
from app.parent.relay import DEFAULT_POLLERS, STARTED_LINE, STOPPED_LINE, Relay, RelaySettings
from app.shared import attestation, deployment, logs, protocol, settings, transport
from app.shared.protocol import Credentials, Op

log = logging.getLogger("app.parent")

PING_TIMEOUT_S = 5.0
ENV_POLLERS = "RELAY_POLLERS"
ENV_WAIT_TIME_S = "RELAY_WAIT_TIME_S"
NONCE_BYTES = 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.parent", description=__doc__)
    parser.add_argument(
        "--enclave-url", default=settings.env(settings.ENV_ENCLAVE_URL, settings.DEFAULT_ENCLAVE_URL)
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="relay cards from SQS to the enclave until SIGTERM")
    run.add_argument("--cards-queue-url", default=settings.env(settings.ENV_CARDS_QUEUE_URL))
    run.add_argument("--results-queue-url", default=settings.env(settings.ENV_RESULTS_QUEUE_URL))
    run.add_argument("--dead-letter-queue-url", default=settings.env(settings.ENV_DEAD_LETTER_QUEUE_URL))
    run.add_argument("--region", default=settings.env(settings.ENV_REGION, settings.DEFAULT_REGION))
    run.add_argument(
        "--key-id",
        default=settings.env(settings.ENV_KMS_KEY_ID),
        help="the deployment's KMS key by its ARN (no alias), named in every Decrypt (ciphertexts under "
        "another key are refused)",
    )
    run.add_argument(
        "--pollers", type=int, default=int(settings.env(ENV_POLLERS) or DEFAULT_POLLERS),
        help=f"default ${ENV_POLLERS} or {DEFAULT_POLLERS}: enough batches to fill the enclave's window",
    )  # fmt: skip
    run.add_argument(
        "--wait-time", type=int, default=int(settings.env(ENV_WAIT_TIME_S) or deployment.LONG_POLL_WAIT_S)
    )
    commands.add_parser("ping", help="exit 0 if the enclave answers a health request")
    canary_parser = commands.add_parser(
        "canary", help="encrypt one test card and have this host's enclave decrypt it (last four compared)"
    )
    canary_parser.add_argument(
        "--key-id", default=settings.env(settings.ENV_KMS_KEY_ID), help="the KMS key's ARN (no alias)"
    )
    canary_parser.add_argument("--region", default=settings.env(settings.ENV_REGION, settings.DEFAULT_REGION))
    attest = commands.add_parser(
        "attest", help="verify the enclave's attestation and compare PCR0 with the key policy's pin"
    )
    attest.add_argument(
        "--key-id",
        default=settings.env(settings.ENV_KMS_KEY_ID),
        help=f"the ARN of the key whose policy holds the pin (default ${settings.ENV_KMS_KEY_ID}; no alias)",
    )
    attest.add_argument("--region", default=settings.env(settings.ENV_REGION, settings.DEFAULT_REGION))
    attest.add_argument("--pinned-pcr0", help="compare with this hex value instead of reading the key policy")
    attest.add_argument("--root-pem", type=Path, help="trusted root (default: the AWS Nitro root, pinned)")
    logs_parser = commands.add_parser("logs", help="write the enclave's log lines to stdout until SIGTERM")
    logs_parser.add_argument(
        "--listen",
        default=settings.env(settings.ENV_ENCLAVE_LOG_LISTEN_URL, settings.DEFAULT_ENCLAVE_LOG_LISTEN_URL),
        help=f"default ${settings.ENV_ENCLAVE_LOG_LISTEN_URL} or {settings.DEFAULT_ENCLAVE_LOG_LISTEN_URL}",
    )
    return parser


def _relay_settings(args: argparse.Namespace) -> RelaySettings:
    return RelaySettings(
        cards_queue_url=settings.require(args.cards_queue_url, settings.ENV_CARDS_QUEUE_URL),
        results_queue_url=settings.require(args.results_queue_url, settings.ENV_RESULTS_QUEUE_URL),
        dead_letter_queue_url=settings.require(
            args.dead_letter_queue_url, settings.ENV_DEAD_LETTER_QUEUE_URL
        ),
        region=args.region,
        encryption_context=settings.parse_encryption_context(settings.env(settings.ENV_ENCRYPTION_CONTEXT)),
        enclave_url=args.enclave_url,
        pollers=args.pollers,
        wait_time_s=args.wait_time,
        key_id=require_key_arn(args.key_id, region=args.region),
    )


def _credentials_from(session: boto3.session.Session) -> Credentials:
    """The instance role's current credentials (IMDSv2 on EC2), refreshed by botocore before expiry."""
    current = session.get_credentials()
    if current is None:
        raise RuntimeError("no AWS credentials found by boto3's default chain")
    frozen = current.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        raise RuntimeError("the AWS credentials found are incomplete")
    return Credentials(frozen.access_key, frozen.secret_key, frozen.token)


def run(args: argparse.Namespace) -> int:
    relay_settings = _relay_settings(args)
    session = boto3.session.Session(region_name=relay_settings.region)
    # Our own code builds every SQS request and SQS checks it again: client-side validation only costs CPU.
    sqs_config = Config(max_pool_connections=4 * relay_settings.pollers + 4, parameter_validation=False)
    sqs = session.client("sqs", config=sqs_config)
    requests = queues.RequestCounter(sqs)
    enclave = EnclavePool(relay_settings.enclave_url)
    relay = Relay(relay_settings, sqs=sqs, credentials=lambda: _credentials_from(session), enclave=enclave)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(
                1
            )  # second signal: leave now; in-flight messages reappear after their visibility timeout
        log.info(
            "draining: finishing the batches in flight", extra=logs.fields(signal=signal.Signals(signum).name)
        )
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        STARTED_LINE,
        extra=logs.fields(
            enclave=relay_settings.enclave_url,
            pollers=relay_settings.pollers,
            sqs_requests=requests.snapshot(),  # the queue settings read at start-up
        ),
    )
    relay.run(stop)
    enclave.close()
    log.info(STOPPED_LINE, extra=logs.fields(sqs_requests=requests.snapshot()))
    return 0


def ping(args: argparse.Namespace) -> int:
    client = EnclaveClient(args.enclave_url, request_timeout_s=PING_TIMEOUT_S)
    try:
        answer = client.call(Op.PING)
    except EnclaveError as error:
        print(f"enclave at {args.enclave_url} is not answering: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    uptime = answer.get("uptime_s")
    print(
        f"enclave at {args.enclave_url} is up (protocol {answer.get('protocol')}, uptime {uptime} s, "
        f"{_clock_note(answer)})"
    )
    return 0


def _clock_note(answer: Mapping[str, Any]) -> str:
    """The enclave's clock against the NSM's signed time at its last attestation document."""
    skew_ms = answer.get("clock_skew_ms")
    if not isinstance(skew_ms, int) or isinstance(skew_ms, bool):
        return "clock not measured yet"
    correction = (
        "KMS requests signed with the NSM's time" if answer.get("clock_corrected") else "no correction"
    )
    return f"clock skew {skew_ms:+d} ms against the NSM, {correction}"


def run_canary(args: argparse.Namespace) -> int:
    """Exit 0 with one line naming the last four; 1 with "canary failed: <code>: <KMS's answer>"."""
    key_id = require_key_arn(args.key_id, region=args.region)
    context = settings.parse_encryption_context(settings.env(settings.ENV_ENCRYPTION_CONTEXT))
    session = boto3.session.Session(region_name=args.region)
    client = EnclaveClient(args.enclave_url)
    try:
        result = canary.run_canary(
            canary.CanarySettings(key_id=key_id, region=args.region, encryption_context=context),
            kms=session.client("kms"),
            enclave=client,
            credentials=lambda: _credentials_from(session),
        )
    except canary.CanaryError as error:
        print(f"canary failed: {error.code}: {error.reason}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(result.line(key_id))
    return 0


def attest(args: argparse.Namespace) -> int:
    key_arn = None if args.pinned_pcr0 else require_key_arn(args.key_id, region=args.region)
    nonce = secrets.token_bytes(NONCE_BYTES)
    client = EnclaveClient(args.enclave_url, request_timeout_s=PING_TIMEOUT_S)
    try:
        document = protocol.parse_attest_result(client.call(Op.ATTEST, protocol.attest_body(nonce)))
    except (EnclaveError, protocol.ProtocolError) as error:
        print(f"no attestation from the enclave at {args.enclave_url}: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    if args.root_pem is None:
        root, label = attestation.load_aws_nitro_root(), "the AWS Nitro root"
    else:
        pem = x509.load_pem_x509_certificate(args.root_pem.read_bytes())
        root, label = pem.public_bytes(serialization.Encoding.DER), str(args.root_pem)
    try:
        pin = (
            attest_report.Pin.given(args.pinned_pcr0)
            if key_arn is None
            else _pin_from_key_policy(args, key_arn)
        )
    except (BotoCoreError, ClientError, PolicyGrammarError, json.JSONDecodeError) as error:
        print(f"cannot read the pin from the key policy: {error}", file=sys.stderr)
        return 1
    report = attest_report.check(document, nonce=nonce, root_certificate_der=root, pin=pin)
    print(attest_report.render(report, root_label=label))
    return 0 if report.ok else 1


def _pin_from_key_policy(args: argparse.Namespace, key_arn: str) -> attest_report.Pin:
    """The key's own policy (kms:DescribeKey, then GetKeyPolicy), named by its ARN."""
    kms = boto3.session.Session(region_name=args.region).client("kms")
    return attest_report.Pin.from_key_policy(pins.read_key_policy(kms, key_arn))


def enclave_logs(args: argparse.Namespace) -> int:
    try:
        sink, url = log_sink.open_sink(args.listen, sys.stdout)
    except transport.TransportError as error:
        log.error("enclave log sink cannot start", extra=logs.fields(error=str(error)))
        return 1

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("enclave log sink stopping", extra=logs.fields(signal=signal.Signals(signum).name))
        sink.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("enclave log sink listening", extra=logs.fields(listen=url))
    sink.serve_forever()
    log.info("enclave log sink stopped", extra=logs.fields(lines=sink.lines, rejected=sink.rejected))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(settings.env(settings.ENV_LOG_LEVEL, "INFO") or "INFO")
    try:
        commands = {"run": run, "ping": ping, "canary": run_canary, "attest": attest, "logs": enclave_logs}
        return commands[args.command](args)
    except settings.SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

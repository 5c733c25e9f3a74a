"""The producer's command line and resolved settings: option > environment variable > default.

Reads the environment in exactly one place (`resolve`); everything else takes a ProducerConfig.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from app.keypolicy.key_arn import require_key_arn
from app.shared import settings

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ProducerConfig:
    count: int
    wait: bool
    timeout_s: float
    cards_file: Path | None
    queue_url: str
    results_queue_url: str | None
    key_id: str
    region: str
    encryption_context: Mapping[str, str]
    seed: int | None = None
    log_file: Path | None = None
    root_pem: Path | None = None  # None: the AWS Nitro root
    pinned_pcr0: str | None = None  # None: read from the key policy


@dataclass(frozen=True)
class VerifyConfig:
    """`python -m app.producer verify`: what to trust, and where the key policy is."""

    key_id: str
    region: str
    root_pem: Path | None
    pinned_pcr0: str | None
    encryption_context: Mapping[str, str] | None = None  # the fixed pairs; None: context not compared


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.producer", description="Encrypt test card numbers with KMS and queue them."
    )
    p.add_argument("--count", type=int, default=1, help="how many cards to send (random picks)")
    p.add_argument("--wait", action="store_true", help="collect and print the results")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for results")
    p.add_argument("--cards-file", type=Path, help="card file (default: the shipped test numbers)")
    p.add_argument("--queue-url", help=f"cards queue (env {settings.ENV_CARDS_QUEUE_URL})")
    p.add_argument("--results-queue-url", help=f"results queue (env {settings.ENV_RESULTS_QUEUE_URL})")
    p.add_argument("--key-id", help=f"the KMS key's ARN (env {settings.ENV_KMS_KEY_ID}; no alias)")
    p.add_argument("--region", help=f"AWS region (env {settings.ENV_REGION})")
    p.add_argument("--seed", type=int, help="seed the random picks (reproducible runs)")
    p.add_argument(
        "--log-file", type=Path, help="append the JSON log lines here, at INFO (default: stderr, WARNING)"
    )
    _trust_options(p)
    return p


def _trust_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root-pem", type=Path,
        help=f"root to verify results against (env {settings.ENV_ATTESTATION_ROOT_PEM}; default: AWS Nitro)",
    )  # fmt: skip
    p.add_argument("--pinned-pcr0", help="the PCR0 to accept (default: read from the key policy itself)")


def verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m app.producer verify",
        description="Verify result bodies (one JSON per line on stdin); exit 1 if any is UNVERIFIED.",
    )
    p.add_argument("--key-id", help=f"KMS key whose policy holds the pin (env {settings.ENV_KMS_KEY_ID})")
    p.add_argument("--region", help=f"AWS region (env {settings.ENV_REGION})")
    _trust_options(p)
    return p


def _root_pem(arg: Path | None, environ: Mapping[str, str] | None) -> Path | None:
    if arg is not None:
        return arg
    value = settings.env(settings.ENV_ATTESTATION_ROOT_PEM, environ=environ)
    return Path(value) if value else None


def _key_id(arg: str | None, environ: Mapping[str, str] | None, region: str) -> str:
    return require_key_arn(arg or settings.env(settings.ENV_KMS_KEY_ID, environ=environ), region=region)


def _region(arg: str | None, environ: Mapping[str, str] | None) -> str:
    return (
        arg
        or settings.env(settings.ENV_REGION, settings.DEFAULT_REGION, environ=environ)
        or settings.DEFAULT_REGION
    )


def resolve_verify(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> VerifyConfig:
    args = verify_parser().parse_args(argv)
    region = _region(args.region, environ)
    given_key = args.key_id or settings.env(settings.ENV_KMS_KEY_ID, environ=environ)
    return VerifyConfig(
        # The key is read only for its pin: with --pinned-pcr0 and no key named, none is needed.
        key_id=_key_id(given_key, environ, region) if given_key or args.pinned_pcr0 is None else "",
        region=region,
        root_pem=_root_pem(args.root_pem, environ),
        pinned_pcr0=args.pinned_pcr0,
        encryption_context=_fixed_context(environ),
    )


def _fixed_context(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The deployment's fixed pairs, as the producer encrypts under them (the default when unset)."""
    return settings.parse_encryption_context(settings.env(settings.ENV_ENCRYPTION_CONTEXT, environ=environ))


def resolve(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ProducerConfig:
    """Parse `argv` and fill the gaps from the environment; SettingsError when something is missing."""
    args = parser().parse_args(argv)
    if args.count < 1:
        raise settings.SettingsError(f"--count must be at least 1, got {args.count}")
    if args.timeout <= 0:
        raise settings.SettingsError(f"--timeout must be positive, got {args.timeout}")
    results_url = args.results_queue_url or settings.env(settings.ENV_RESULTS_QUEUE_URL, environ=environ)
    if args.wait:
        settings.require(results_url, settings.ENV_RESULTS_QUEUE_URL)
    region = _region(args.region, environ)
    return ProducerConfig(
        count=args.count,
        wait=args.wait,
        timeout_s=args.timeout,
        cards_file=args.cards_file,
        queue_url=settings.require(
            args.queue_url or settings.env(settings.ENV_CARDS_QUEUE_URL, environ=environ),
            settings.ENV_CARDS_QUEUE_URL,
        ),
        results_queue_url=results_url,
        key_id=_key_id(args.key_id, environ, region),
        region=region,
        encryption_context=_fixed_context(environ),
        seed=args.seed,
        log_file=args.log_file,
        root_pem=_root_pem(args.root_pem, environ),
        pinned_pcr0=args.pinned_pcr0,
    )

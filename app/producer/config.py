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
    return p


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
    region = (
        args.region
        or settings.env(settings.ENV_REGION, settings.DEFAULT_REGION, environ=environ)
        or settings.DEFAULT_REGION
    )
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
        key_id=require_key_arn(
            args.key_id or settings.env(settings.ENV_KMS_KEY_ID, environ=environ), region=region
        ),
        region=region,
        encryption_context=settings.parse_encryption_context(
            settings.env(settings.ENV_ENCRYPTION_CONTEXT, environ=environ)
        ),
        seed=args.seed,
        log_file=args.log_file,
    )

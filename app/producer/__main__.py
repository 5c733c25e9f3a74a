"""`python -m app.producer --count N [--wait]`: queue encrypted test cards and optionally check the results;
`python -m app.producer verify`: check result bodies read from stdin, one JSON per line.

Output for people: stdout has one line when the cards are queued, then (with --wait) one line per result,
each `verified` or `UNVERIFIED` (signed by the pinned enclave image, app/shared/result_proof.py), and a
summary; stderr has the progress bar (on a terminal only), errors with what to do next, and JSON log lines
at WARNING and above (`--log-file` takes every INFO line instead). Exit codes: 0 every card came back ok,
verified, with the right last four digits (or sent, without --wait), 1 a failure (AWS error, rejected,
wrong, missing or UNVERIFIED result), 2 usage (bad option, setting or card file).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from app.shared import logs, settings

from . import advice
from .card_file import CardFileError, load_cards
from .config import ProducerConfig, resolve, resolve_verify
from .progress import progress
from .report import all_matched, outcome_line, summary_line
from .sender import SendError, pick_cards, send_cards
from .verification import TrustError, load_trust, verify_lines
from .waiter import collect_results

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("app.producer")


def clients(region: str) -> tuple[KMSClient, SQSClient]:
    """One KMS and one SQS client, reused for every call (boto3 honours AWS_ENDPOINT_URL)."""
    session = boto3.session.Session(region_name=region)
    return session.client("kms"), session.client("sqs")


def run(config: ProducerConfig, numbers: Sequence[str], out: IO[str]) -> int:
    kms, sqs = clients(config.region)
    trust = None
    if config.wait:  # read before anything is sent: no pin, nothing can be verified
        trust = load_trust(
            root_pem=config.root_pem, pinned_pcr0=config.pinned_pcr0, kms=kms, key_id=config.key_id,
            fixed_context=config.encryption_context,
        )  # fmt: skip
    picks = pick_cards(numbers, config.count, random.Random(config.seed))  # noqa: S311 - test data
    started = time.monotonic()
    with progress("encrypting and queueing cards", config.count) as advance:
        sent = send_cards(
            kms, sqs, queue_url=config.queue_url, key_id=config.key_id,
            fixed_context=config.encryption_context, numbers=picks, on_batch=advance,
        )  # fmt: skip
    seconds = time.monotonic() - started
    logger.info("cards queued", extra=logs.fields(cards=len(sent), seconds=round(seconds, 3)))
    waiting = config.wait and config.results_queue_url is not None
    then = f"; waiting up to {config.timeout_s:g} s for their results" if waiting else ""
    print(f"queued {len(sent)} encrypted cards in {seconds:.2f} s{then}", file=out, flush=True)
    if not waiting or config.results_queue_url is None or trust is None:
        return 0
    print(trust.describe(), file=out, flush=True)
    collected = collect_results(
        sqs, config.results_queue_url, sent, config.timeout_s,
        on_outcome=lambda outcome: print(outcome_line(outcome), file=out, flush=True),
        verifier=trust.verifier(),
    )  # fmt: skip
    print(summary_line(collected, len(sent), started), file=out, flush=True)
    if collected.missing:
        print(f"timed out after {config.timeout_s:g} s: {len(collected.missing)} results missing", file=out)
        print(f"what to do: {advice.RESULTS_MISSING}", file=out)
    if any(not outcome.matches for outcome in collected.outcomes):
        print(f"what to do: {advice.CARDS_REJECTED}", file=out)
    if any(not outcome.verified for outcome in collected.outcomes):
        print(f"what to do: {advice.RESULTS_UNVERIFIED}", file=out)
    return 0 if all_matched(collected, len(sent)) else 1


def configure_logs(config: ProducerConfig) -> None:
    """JSON lines to the log file at INFO, or to stderr at WARNING; LOG_LEVEL overrides either."""
    default = "INFO" if config.log_file else "WARNING"
    level = settings.env(settings.ENV_LOG_LEVEL, default) or default
    logs.configure(level, path=config.log_file)


def verify(argv: Sequence[str], out: IO[str], lines: IO[str]) -> int:
    """Exit 0 when every line is a verified result, 1 when any is not (or nothing can be verified)."""
    config = resolve_verify(argv)
    kms = boto3.session.Session(region_name=config.region).client("kms")
    try:
        trust = load_trust(
            root_pem=config.root_pem, pinned_pcr0=config.pinned_pcr0, kms=kms, key_id=config.key_id,
            fixed_context=config.encryption_context,
        )  # fmt: skip
    except TrustError as error:
        print(f"error: {error}\nwhat to do: {advice.for_error(error)}", file=sys.stderr)
        return 1
    print(trust.describe(), file=out, flush=True)
    verifier = trust.verifier()
    counts = {True: 0, False: 0}
    for verified, line in verify_lines(verifier, lines):
        counts[verified] += 1
        print(line, file=out, flush=True)
    print(f"{counts[True]} verified, {counts[False]} UNVERIFIED", file=out, flush=True)
    return 0 if counts[True] and not counts[False] else 1


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None, stdin: IO[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["verify"]:
        try:
            return verify(arguments[1:], out or sys.stdout, stdin or sys.stdin)
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else 2
    try:
        config = resolve(arguments)
        numbers = load_cards(config.cards_file)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except (settings.SettingsError, CardFileError) as error:
        print(f"error: {error}\nwhat to do: {advice.for_error(error)}", file=sys.stderr)
        return 2
    configure_logs(config)
    try:
        return run(config, numbers, out or sys.stdout)
    except (BotoCoreError, ClientError, SendError, TrustError) as error:
        logger.exception("producer failed", extra=logs.fields(error=type(error).__name__, detail=str(error)))
        print(f"error: {error}\nwhat to do: {advice.for_error(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

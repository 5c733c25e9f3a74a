"""`python -m app.producer --count N [--wait]`: queue encrypted test cards and optionally check the results.

Output for people: stdout has one line when the cards are queued, then (with --wait) one line per result
and a summary; stderr has the progress bar (on a terminal only), errors with what to do next, and JSON
log lines at WARNING and above (`--log-file` takes every INFO line instead). Exit codes: 0 every card
came back ok with the right last four digits (or sent, without --wait), 1 a failure (AWS error,
rejected, wrong or missing result), 2 usage (bad option, setting or card file).
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
from .config import ProducerConfig, resolve
from .progress import progress
from .report import all_matched, outcome_line, summary_line
from .sender import SendError, pick_cards, send_cards
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
    if not waiting or config.results_queue_url is None:
        return 0
    collected = collect_results(
        sqs, config.results_queue_url, sent, config.timeout_s,
        on_outcome=lambda outcome: print(outcome_line(outcome), file=out, flush=True),
    )  # fmt: skip
    print(summary_line(collected, len(sent), started), file=out, flush=True)
    if collected.missing:
        print(f"timed out after {config.timeout_s:g} s: {len(collected.missing)} results missing", file=out)
        print(f"what to do: {advice.RESULTS_MISSING}", file=out)
    if any(not outcome.matches for outcome in collected.outcomes):
        print(f"what to do: {advice.CARDS_REJECTED}", file=out)
    return 0 if all_matched(collected, len(sent)) else 1


def configure_logs(config: ProducerConfig) -> None:
    """JSON lines to the log file at INFO, or to stderr at WARNING; LOG_LEVEL overrides either."""
    default = "INFO" if config.log_file else "WARNING"
    level = settings.env(settings.ENV_LOG_LEVEL, default) or default
    logs.configure(level, path=config.log_file)


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    try:
        config = resolve(sys.argv[1:] if argv is None else argv)
        numbers = load_cards(config.cards_file)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except (settings.SettingsError, CardFileError) as error:
        print(f"error: {error}\nwhat to do: {advice.for_error(error)}", file=sys.stderr)
        return 2
    configure_logs(config)
    try:
        return run(config, numbers, out or sys.stdout)
    except (BotoCoreError, ClientError, SendError) as error:
        logger.exception("producer failed", extra=logs.fields(error=type(error).__name__, detail=str(error)))
        print(f"error: {error}\nwhat to do: {advice.for_error(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

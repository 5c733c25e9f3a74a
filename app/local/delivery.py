"""Lost and duplicate counts for a load run: every card sent must come back exactly once.

`python -m app.local.delivery --cards N` is a load run: N cards through the local pipeline with no fault
(no ceiling phase), results consumed as they arrive, and a JSON summary with these counts as its last
line; `python -m app.local bench` reports them too. Local mode only.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.local.provision import local_client
from app.local.stack import LocalStack, StackInfo
from app.shared import logs
from app.shared.queue_messages import ResultMessage

DRAIN_TIMEOUT_S = 600.0
LOAD_TIMEOUT_S = 3600.0  # moto slows down with queue depth: 10,000 queued cards take many minutes here
# After the last expected result: how long to keep listening for late duplicates, and to wait for the
# cards queue to empty (the relay deletes right after publishing).
SETTLE_S = 5.0


@dataclass(frozen=True)
class Delivery:
    sent: int
    lost: int  # sent cards with no result
    duplicates: int  # results beyond the first for the same card
    unexpected: int  # results for cards this run did not send
    left_on_cards_queue: int  # undeleted messages: each would come back as a duplicate later


def count(sent_ids: Collection[str], result_ids: Iterable[str | None], left_on_queue: int) -> Delivery:
    seen = Counter(result_ids)
    expected = set(sent_ids)
    return Delivery(
        sent=len(expected),
        lost=sum(1 for card_id in expected if not seen[card_id]),
        duplicates=sum(n - 1 for card_id, n in seen.items() if card_id in expected and n > 1),
        unexpected=sum(n for card_id, n in seen.items() if card_id not in expected),
        left_on_cards_queue=left_on_queue,
    )


def cards_left(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def _receive(sqs: Any, url: str) -> list[ResultMessage]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    found = messages.get("Messages", [])
    if found:
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(found)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return [ResultMessage.from_json(m["Body"]) for m in found]


def drain_counting(
    info: StackInfo, sent_ids: Sequence[str], timeout_s: float = DRAIN_TIMEOUT_S, settle_s: float = SETTLE_S
) -> tuple[list[ResultMessage], Delivery]:
    """Receive (and delete) results until every sent card has one, then `settle_s` more; count."""
    sqs = local_client("sqs", info.endpoints.http)
    url = info.resources.results_queue_url
    expected, results = set(sent_ids), list[ResultMessage]()
    deadline = time.monotonic() + timeout_s
    while not expected <= {r.card_id for r in results} and time.monotonic() < deadline:
        results += _receive(sqs, url)
    settle_until = time.monotonic() + settle_s
    while time.monotonic() < settle_until:
        results += _receive(sqs, url)
    left = cards_left(sqs, info.resources.cards_queue_url)
    return results, count(expected, (r.card_id for r in results), left)


def load_run(stack: LocalStack, info: StackInfo, count: int, timeout_s: float) -> dict[str, Any]:
    """Pre-load `count` cards, start the relay, consume every result; timings and delivery counts."""
    from app.local import bench  # noqa: PLC0415 - bench imports this module

    sent = bench.preload(info, count, "loading the cards queue")
    relay = stack.start_relay()
    started = bench.relay_started_at(relay)
    results, delivered = drain_counting(info, [card.card_id for card in sent], timeout_s)
    stack.stop_relay()
    finished = max((r.processed_at.timestamp() for r in results if r.processed_at), default=time.time())
    seconds = finished - started
    return {
        "cards": count,
        "ok": sum(1 for r in results if r.status == "ok"),
        "seconds": round(seconds, 1),
        "cards_per_s": round(count / seconds, 1),
        **as_summary(delivered),
    }


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack's context managers, which stop every child


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    p = argparse.ArgumentParser(prog="python -m app.local.delivery", description=__doc__)
    p.add_argument("--cards", type=int, default=1000)
    p.add_argument("--run-dir", type=Path)
    p.add_argument("--timeout", type=float, default=LOAD_TIMEOUT_S, help="seconds to wait for results")
    args = p.parse_args(argv)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="nitro-enclave-demo-"))
    stack = LocalStack(run_dir, relay=False)
    with stack as info:
        print(f"local stack up; logs in {info.run_dir}", flush=True)
        summary = load_run(stack, info, args.cards, args.timeout)
    print(json.dumps(summary), flush=True)
    clean = summary["lost"] == 0 and summary["duplicates"] == 0 and summary["left_on_cards_queue"] == 0
    return 0 if clean else 1


def as_summary(delivery: Delivery) -> dict[str, int]:
    return asdict(delivery)


if __name__ == "__main__":
    sys.exit(main())

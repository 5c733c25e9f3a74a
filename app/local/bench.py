"""`python -m app.local bench`: cards through the local pipeline vs. the same calls made directly.

Both phases start from a pre-loaded cards queue of the same depth (loading is not timed). Throughput is
cards / (last result's processed_at - the moment the consumer started). p50/p99 are per-card decrypt times:
the enclave's own (`ResultMessage.enclave_ms`) for the pipeline, the same steps timed by the ceiling for it.
What the emulator cannot blur is each process's CPU per card (`cpu_accounting`, over the timed phase) and
the c5.xlarge projection built from it (`projection`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from app.local import delivery, processes, profiler, projection
from app.local.ceiling import DEFAULT_POLLERS, percentiles
from app.local.cpu_accounting import CpuMeter
from app.local.processes import Child, ChildFailed, ChildSpec
from app.local.provision import local_client
from app.local.stack import LocalStack, StackInfo
from app.parent import relay as relay_lines
from app.producer.card_file import load_cards
from app.producer.progress import progress
from app.producer.sender import SentCard, pick_cards, send_cards
from app.shared import deployment
from app.shared.queue_messages import ResultMessage

PHASE_TIMEOUT_S = 600.0
POLL_S = 0.1
START_POLL_S = 0.01  # the relay's CPU is metered from its start-up line: notice it quickly
DECRYPTED = "decrypted"  # the enclave handler's line per card, with kms_ms and ms
RELAY_STARTED, RELAY_STOPPED = relay_lines.STARTED_LINE, relay_lines.STOPPED_LINE


def preload(info: StackInfo, count: int, phase: str) -> list[SentCard]:
    """Fill the cards queue before a phase: a bar on a terminal, then one line either way."""
    kms, sqs = local_client("kms", info.endpoints.http), local_client("sqs", info.endpoints.http)
    started = time.monotonic()
    with progress(f"loading the cards queue ({phase})", count) as advance:
        sent = send_cards(
            kms, sqs, queue_url=info.resources.cards_queue_url, key_id=info.resources.key_arn,
            fixed_context=deployment.ENCRYPTION_CONTEXT, numbers=pick_cards(load_cards(), count),
            on_batch=advance,
        )  # fmt: skip
    print(f"{phase}: {count} cards loaded in {time.monotonic() - started:.2f} s (not timed)", flush=True)
    return sent


def drain_results(info: StackInfo, count: int) -> list[ResultMessage]:
    """Receive (and delete) `count` results from the results queue, waiting as needed."""
    sqs = local_client("sqs", info.endpoints.http)
    results: list[ResultMessage] = []
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while len(results) < count:
        if time.monotonic() > deadline:
            raise ChildFailed(f"only {len(results)} of {count} results after {PHASE_TIMEOUT_S:g} s")
        url = info.resources.results_queue_url
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        results += [ResultMessage.from_json(m["Body"]) for m in messages]
        if messages:
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return results


def queue_depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def wait_for_results(info: StackInfo, count: int, watch: Child) -> None:
    """Block (without consuming) until `count` results are queued; fail if `watch` dies first."""
    sqs = local_client("sqs", info.endpoints.http)
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    while queue_depth(sqs, info.resources.results_queue_url) < count:
        if watch.process.poll() is not None:
            raise ChildFailed(f"{watch.name} exited early (see {watch.stderr_path})")
        if time.monotonic() > deadline:
            raise ChildFailed(f"fewer than {count} results after {PHASE_TIMEOUT_S:g} s")
        time.sleep(POLL_S)


def log_entries(log_file: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of one of our programs' logs (`app.shared.logs`), skipping any other text."""
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            yield json.loads(line)


def relay_started_at(relay: Child) -> float:
    """The wall-clock second the relay logged that it started polling (its JSON log's ts)."""
    deadline = time.monotonic() + processes.READY_TIMEOUT_S
    while time.monotonic() < deadline:
        for entry in log_entries(relay.stderr_path):
            if entry.get("msg") == RELAY_STARTED:
                return datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        if relay.process.poll() is not None:
            break
        time.sleep(START_POLL_S)
    raise ChildFailed(f"the relay did not log {RELAY_STARTED!r} (see {relay.stderr_path})")


def enclave_own_ms(log_file: Path) -> list[float]:
    """Per card, the enclave's time minus its KMS round trip, from the enclave's own "decrypted" lines."""
    own = []
    for entry in log_entries(log_file):
        if entry.get("msg") == DECRYPTED and "ms" in entry and "kms_ms" in entry:
            own.append(float(entry["ms"]) - float(entry["kms_ms"]))
    return own


def relay_sqs_requests(log_file: Path) -> dict[str, int]:
    """The SQS requests the relay sent between its start-up line and its stop line, per operation (its
    `sqs_requests` counts on both). Includes the few idle long polls between the last card and the stop."""
    counts: dict[str, dict[str, int]] = {}
    for entry in log_entries(log_file):
        if entry.get("msg") in (RELAY_STARTED, RELAY_STOPPED) and isinstance(entry.get("sqs_requests"), dict):
            counts[entry["msg"]] = entry["sqs_requests"]
    if RELAY_STOPPED not in counts:
        raise ChildFailed(f"the relay did not log {RELAY_STOPPED!r} with its SQS requests ({log_file})")
    started, stopped = counts.get(RELAY_STARTED, {}), counts[RELAY_STOPPED]
    return {op: n - started.get(op, 0) for op, n in sorted(stopped.items()) if n - started.get(op, 0)}


def pipeline_phase(
    stack: LocalStack, info: StackInfo, count: int, *, profile: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """The phase's figures, and the relay's SQS requests per card by operation."""
    sent = preload(info, count, "pipeline")
    pids = stack.pids()
    spy = profiler.Profiler(pids["enclave"], info.run_dir) if profile else None
    if spy is not None:
        spy.start()
    meter = CpuMeter({"enclave": pids["enclave"], "emulator": pids["emulator"]})
    meter.start()  # both idle until the relay starts
    relay = stack.start_relay()
    started = relay_started_at(relay)
    relay_meter = CpuMeter({"relay": relay.process.pid})
    relay_meter.start()  # after its start-up (imports, clients): what it costs per card is what counts
    relay_spy = (
        profiler.Profiler(relay.process.pid, info.run_dir, "relay", profiler.RELAY_SAMPLES_PER_S)
        if profile
        else None
    )
    if relay_spy is not None:
        relay_spy.start()
    wait_for_results(info, count, relay)
    cpu_s = {**meter.stop(), **relay_meter.stop()}
    for recorder in (spy, relay_spy):
        if recorder is not None:
            report_profile(recorder)
    results, delivered = delivery.drain_counting(info, [card.card_id for card in sent])
    stack.stop_relay()
    requests = relay_sqs_requests(relay.stderr_path)
    finished = max((r.processed_at.timestamp() for r in results if r.processed_at), default=time.time())
    p50, p99 = percentiles([r.enclave_ms for r in results if r.enclave_ms is not None])
    own_p50, own_p99 = percentiles(enclave_own_ms(info.run_dir / "enclave.stderr.log"))
    ok = len({r.card_id for r in results if r.status == "ok"})  # cards, not results: duplicates count once
    cpu_ms = {f"{name}_cpu_ms_per_card": round(seconds * 1000 / count, 2) for name, seconds in cpu_s.items()}
    return {
        "cards": count, "ok": ok, "seconds": finished - started, "p50_ms": p50, "p99_ms": p99,
        "enclave_own_p50_ms": own_p50, "enclave_own_p99_ms": own_p99, **cpu_ms,
        **delivery.as_summary(delivered),
    }, {op: round(n / count, 3) for op, n in requests.items()}  # fmt: skip


def report_profile(spy: profiler.Profiler) -> None:
    svg = spy.stop()
    print(f"flame graph of the {spy.name} under load: {svg}", flush=True)
    stacks = spy.stacks
    if stacks.exists():
        for title, top in (
            ("self", profiler.top_self(stacks)),
            ("inclusive", profiler.top_inclusive(stacks)),
        ):
            print(f"top frames ({title} samples):", flush=True)
            for frame, share in top:
                print(f"  {share:5.1f}%  {frame}", flush=True)


def ceiling_phase(info: StackInfo, count: int) -> dict[str, float]:
    preload(info, count, "ceiling")
    args = (
        "--endpoint", info.endpoints.http, "--kms-endpoint", info.endpoints.https,
        "--pki", str(info.run_dir / "pki"), "--pin", info.pin_hex, "--cards", str(count),
        "--cards-queue-url", info.resources.cards_queue_url,
        "--results-queue-url", info.resources.results_queue_url, "--pollers", str(pollers()),
    )  # fmt: skip
    child = processes.start(ChildSpec("ceiling", "app.local.ceiling", args), info.run_dir)
    try:
        code = child.process.wait(timeout=PHASE_TIMEOUT_S)
    finally:
        child.stop()
    if code != 0:
        raise ChildFailed(f"the ceiling exited with status {code} (see {child.stderr_path})")
    summary: dict[str, float] = json.loads(child.stdout_path.read_text(encoding="utf-8").splitlines()[-1])
    return summary


def describe_requests(per_card: dict[str, float], relay_ms: float) -> str:
    """One line: the relay's SQS requests per card, by operation, beside its CPU per card. Receive and
    delete cannot go below 0.1 each (SQS takes at most 10 messages per call), nor can one result per card."""
    total = sum(per_card.values())
    parts = ", ".join(f"{op} {n:.3f}" for op, n in per_card.items())
    return f"relay: {total:.3f} SQS requests per card ({parts}); {relay_ms:.2f} ms of CPU per card"


def pollers() -> int:
    return int(os.environ.get("RELAY_POLLERS") or DEFAULT_POLLERS)


def run(count: int, run_dir: Path, *, profile: bool = False) -> int:
    """Both phases on one stack; the last line printed is the JSON summary."""
    stack = LocalStack(run_dir, relay=False)
    print("starting the local stack: emulator (KMS, SQS), software enclave", flush=True)
    with stack as info:
        print(f"local stack up; logs in {info.run_dir}", flush=True)
        pipeline, per_card = pipeline_phase(stack, info, count, profile=profile)
        print(f"pipeline: {count} cards in {pipeline['seconds']:.2f} s", flush=True)
        ceiling = ceiling_phase(info, count)
        print(f"ceiling:  {count} cards in {ceiling['seconds']:.2f} s", flush=True)
    cards_per_s = count / pipeline["seconds"]
    enclave_ms, relay_ms = pipeline["enclave_cpu_ms_per_card"], pipeline["relay_cpu_ms_per_card"]
    estimate = projection.project(enclave_ms, relay_ms)
    print(projection.describe(estimate), flush=True)
    print(describe_requests(per_card, relay_ms), flush=True)
    summary = {
        "cards": count,
        "ok": int(pipeline["ok"]),
        "cards_per_s": round(cards_per_s, 1),
        "p50_ms": round(pipeline["p50_ms"], 1),
        "p99_ms": round(pipeline["p99_ms"], 1),
        "enclave_own_p50_ms": round(pipeline["enclave_own_p50_ms"], 2),
        "enclave_own_p99_ms": round(pipeline["enclave_own_p99_ms"], 2),
        "enclave_cpu_ms_per_card": enclave_ms,
        "relay_cpu_ms_per_card": relay_ms,
        "relay_sqs_requests_per_card": round(sum(per_card.values()), 3),
        "relay_sqs_requests": per_card,
        "emulator_cpu_ms_per_card": pipeline["emulator_cpu_ms_per_card"],
        "ceiling_cpu_ms_per_card": ceiling["cpu_ms_per_card"],
        "projected_cards_per_s": estimate.cards_per_s,
        "projection": estimate.assumptions(),
        "ceiling_cards_per_s": ceiling["cards_per_s"],
        "ceiling_p50_ms": ceiling["p50_ms"],
        "ceiling_p99_ms": ceiling["p99_ms"],
        "ratio": round(cards_per_s / ceiling["cards_per_s"], 3),
        "pollers": pollers(),
        "lost": int(pipeline["lost"]),
        "duplicates": int(pipeline["duplicates"]),
    }
    print(json.dumps(summary), flush=True)
    return 0 if pipeline["ok"] == count else 1

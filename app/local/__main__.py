"""`python -m app.local demo|serve|bench`: the whole pipeline on one machine, against the emulator.

Exit codes: 0 every card matched and the parent's own Decrypt was refused (demo) / clean stop (serve) /
benchmark done; 1 a failure; `demo --tamper` passes (0) only when the key policy refused every card of the
changed enclave; 2 usage.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from app.local import bench, instructions, parent_refusal
from app.local.processes import ChildFailed
from app.local.profiler import ProfilerMissing
from app.local.provision import local_client
from app.local.stack import LocalStack, StackInfo, patched_environ
from app.producer.__main__ import main as producer_main
from app.shared import deployment, logs

DEMO_TIMEOUT_S = 60.0
PRODUCER_LOG = "producer.log"
STARTING = "starting the local stack: emulator (KMS, SQS), software enclave, relay"


RUN_DIR_HELP = "where child logs and the throw-away PKI go (default: a temp dir)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.local", description=__doc__)
    p.add_argument("--run-dir", type=Path, help=RUN_DIR_HELP)
    # Accepted after the subcommand too; SUPPRESS keeps a value given before it when none is given after.
    run_dir = argparse.ArgumentParser(add_help=False)
    run_dir.add_argument("--run-dir", type=Path, default=argparse.SUPPRESS, help=RUN_DIR_HELP)
    commands = p.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", parents=[run_dir], help="send N cards through the local pipeline and check every answer"
    )
    demo.add_argument("--count", type=int, default=10)
    demo.add_argument("--timeout", type=float, default=DEMO_TIMEOUT_S, help="seconds to wait for results")
    demo.add_argument("--tamper", action="store_true", help="run an enclave whose measurement is not pinned")
    commands.add_parser(
        "serve", parents=[run_dir], help="keep the local stack running and print how to use it"
    )
    b = commands.add_parser(
        "bench", parents=[run_dir], help="time the pipeline against the emulator's ceiling"
    )
    b.add_argument("--cards", type=int, default=1000)
    b.add_argument(
        "--profile", action="store_true", help="flame graph of the enclave (py-spy) in the run dir"
    )
    return p


def run_dir_for(given: Path | None) -> Path:
    return given if given is not None else Path(tempfile.mkdtemp(prefix="nitro-enclave-demo-"))


def _banner(info: StackInfo, started: float, tamper: bool) -> None:
    print(f"local stack up in {time.monotonic() - started:.1f} s; logs in {info.run_dir}", flush=True)
    print(f"key policy pins enclave PCR0 {info.pin_hex}", flush=True)
    print(f"the enclave's own log channel writes to {info.enclave_log_file}", flush=True)
    if tamper:
        from app.local.enclave import enclave_measurement  # noqa: PLC0415 - only the tamper demo needs it

        print(f"TAMPER: the enclave now measures {enclave_measurement(tamper=True).hex()}", flush=True)
        print("        KMS must refuse every decrypt: expect each card to be rejected", flush=True)


def demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    print(STARTING, flush=True)
    stack = LocalStack(run_dir_for(args.run_dir), tamper=args.tamper)
    with stack as info:
        _banner(info, started, args.tamper)
        with patched_environ(info.environment()):
            # The producer's JSON log goes to the run directory: the terminal gets the result lines only.
            log_file = str(info.run_dir / PRODUCER_LOG)
            wait = ["--wait", "--timeout", str(args.timeout), "--log-file", log_file]
            code = producer_main(["--count", str(args.count), *wait])
            refused = _parked_as_access_denied(info, args.count) if args.tamper else 0
        parent_refused = args.tamper or parent_refusal.parent_decrypt_refused(stack, info)
    if not args.tamper:
        return code if parent_refused else 1
    if code == 0:
        print("SECURITY FAILURE: a tampered enclave decrypted cards", flush=True)
        return 1
    if refused != args.count:
        print(f"tamper demo inconclusive: {refused}/{args.count} cards parked with access_denied", flush=True)
        return 1
    print(
        f"tamper demo passed: the key policy refused the changed enclave; all {refused} cards are parked "
        "on the dead-letter queue with error_code=access_denied",
        flush=True,
    )
    return 0


def _parked_as_access_denied(info: StackInfo, expected: int) -> int:
    """How many dead-letter messages carry error_code=access_denied (what the relay parks on refusal)."""
    sqs = local_client("sqs", info.endpoints.http, info.resources.region)
    seen: dict[str, str] = {}
    for _ in range(3):
        answer = sqs.receive_message(
            QueueUrl=info.resources.dead_letter_queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=[deployment.DLQ_ATTRIBUTE_ERROR_CODE],
            VisibilityTimeout=30,
            WaitTimeSeconds=1,
        )
        for message in answer.get("Messages", []):
            attribute = message.get("MessageAttributes", {}).get(deployment.DLQ_ATTRIBUTE_ERROR_CODE, {})
            seen[message["MessageId"]] = attribute.get("StringValue", "")
        if len(seen) >= expected:
            break
    return sum(code == "access_denied" for code in seen.values())


def serve(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(STARTING, flush=True)
    stack = LocalStack(run_dir_for(args.run_dir))
    with stack as info:
        stack.supervise()  # as systemd does on the host: a dead enclave or relay is restarted
        print(instructions.serve_text(info), flush=True)
        stop.wait()
        print("stopping the local stack", flush=True)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    return bench.run(args.cards, run_dir_for(args.run_dir), profile=args.profile)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the stack's context managers, which stop every child


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if getattr(args, "count", 1) < 1 or getattr(args, "cards", 1) < 1:
        print("error: the number of cards must be at least 1", file=sys.stderr)
        return 2
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "demo": demo,
        "serve": serve,
        "bench": run_bench,
    }
    try:
        return commands[args.command](args)
    except (ChildFailed, ProfilerMissing) as error:
        print(f"error: {error}", file=sys.stderr)
        print("what to do: read that log; running the command again starts a fresh stack", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: the stack's context managers have stopped every child
        return 130


if __name__ == "__main__":
    sys.exit(main())

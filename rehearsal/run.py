"""One rehearsal, step by step: synth, rootfs, namespace and host-side stand-ins, the emulator's resources,
the boot under systemd to the wait condition's signal, then the key and the cards. Every step has a name;
a failure raises RehearsalFailed naming the step and the reason (a FAILURE signal's Reason, a failed
unit's journal tail).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from app.local import processes
from app.local.emulator import Endpoints as EmulatorEndpoints
from app.local.processes import ChildSpec
from app.local.software_nsm import LocalPki
from infra.constants import REPO_ROOT
from rehearsal import rootfs, wheelhouse
from rehearsal.cloud import Cloud
from rehearsal.container import Container
from rehearsal.netns import IMDS_ADDRESS
from rehearsal.template import Synthesized, synth
from rehearsal.wait_handle import Signal, read_signals

CACHE = REPO_ROOT / ".cache" / "rehearsal"
HANDLE_PORT = 8085
SIGNAL_TIMEOUT_S = 900.0
POLL_S = 2.0
CONTAINER_PKI = "/var/lib/rehearsal/pki"
T = TypeVar("T")


class RehearsalFailed(RuntimeError):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass
class Run:
    """One run's directory and its report lines."""

    dir: Path
    started: float

    def say(self, text: str) -> None:
        print(f"[rehearsal {time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def step(self, name: str, action: Callable[[], T]) -> T:
        self.say(f"step: {name}")
        try:
            return action()
        except RehearsalFailed:
            raise
        except Exception as error:
            raise RehearsalFailed(name, f"{type(error).__name__}: {error}") from error


def new_run() -> Run:
    name = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = CACHE / "runs" / name
    return Run(dir=run_dir, started=time.monotonic())


@contextlib.contextmanager
def host_services(run: Run) -> Iterator[EmulatorEndpoints]:
    """Emulator and wait handle (this process runs inside the namespace); yields the emulator's endpoints
    (both keep connections alive, as KMS and SQS do)."""
    with contextlib.ExitStack() as stack:
        pki = run.dir / "pki"
        LocalPki.generate().save(pki)
        emulator = stack.enter_context(
            processes.running(
                ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki))),
                run.dir,
                processes.has_ready_line,
            )
        )
        ready = json.loads(emulator.first_line() or "{}")
        endpoints = EmulatorEndpoints(http=ready["http"], https=ready["https"])
        handle_args = ("--listen", f"127.0.0.1:{HANDLE_PORT}", "--record", str(run.dir / "signals.jsonl"))
        stack.enter_context(
            processes.running(
                ChildSpec("wait-handle", "rehearsal.wait_handle", handle_args),
                run.dir,
                processes.has_ready_line,
            )
        )
        yield endpoints
        stack.close()


def start_imds(run: Run, cloud: Cloud) -> contextlib.AbstractContextManager[processes.Child]:
    role_id = next(iter(cloud.synthesized.resources("AWS::IAM::Role")))
    for logical_id, resource in cloud.synthesized.resources("AWS::IAM::Role").items():
        if "ec2.amazonaws.com" in json.dumps(resource["Properties"]["AssumeRolePolicyDocument"]):
            role_id = logical_id
    args: tuple[str, ...] = ("--listen", f"{IMDS_ADDRESS}:80", "--role", cloud.refs[role_id])
    args += ("--region", cloud.region)
    args += ("--account", "123456789012")
    return processes.running(ChildSpec("imds", "rehearsal.imds", args), run.dir, processes.has_ready_line)


def wait_for_signal(run: Run, box: Container, record: Path) -> list[Signal]:
    """Until the first SUCCESS or FAILURE, the user data's unit failing without one, or the timeout."""
    deadline = time.monotonic() + SIGNAL_TIMEOUT_S
    while time.monotonic() < deadline:
        signals = read_signals(record)
        if any(s.status in ("SUCCESS", "FAILURE") for s in signals):
            return signals
        if not box.alive():
            raise RehearsalFailed("boot", f"the container stopped (see {box.console})")
        state = box.unit_state(rootfs.CLOUD_FINAL_UNIT)
        if state.startswith("failed") or state == "active success":
            time.sleep(POLL_S)  # a last signal may still be in flight
            if not any(s.status in ("SUCCESS", "FAILURE") for s in read_signals(record)):
                tail = box.journal(rootfs.CLOUD_FINAL_UNIT)
                raise RehearsalFailed(
                    "user data", f"{rootfs.CLOUD_FINAL_UNIT} is {state} without a signal:\n{tail}"
                )
        time.sleep(POLL_S)
    raise RehearsalFailed("boot signal", f"no SUCCESS or FAILURE signal within {SIGNAL_TIMEOUT_S:g} s")


def cached(run: Run) -> tuple[Path, Path]:
    """The wheelhouse and the base rootfs, made on first use: before the namespace, which has no network."""
    wheels = run.step("wheelhouse (pip download, cached)", lambda: wheelhouse.ensure(CACHE))
    base = run.step("root filesystem (debootstrap bookworm, cached)", lambda: rootfs.base(CACHE, wheels))
    return wheels, base


def prepare(run: Run) -> tuple[Synthesized, Path, Path]:
    run.dir.mkdir(parents=True, exist_ok=True)
    synthesized = run.step("synthesize the stack (cdk synth)", lambda: synth(run.dir / "cdk.out"))
    wheels, base = cached(run)
    root = run.step("fresh copy of the root filesystem", lambda: rootfs.fresh_copy(base, run.dir))
    return synthesized, wheels, root

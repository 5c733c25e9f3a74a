"""One worker process per enclave vCPU behind the one listening socket, and the supervisor that keeps them.

Prefork: the supervisor binds the listener, then starts `count` copies of its own entry point with the
listening socket inherited (vsock has no SO_REUSEPORT: the kernel hands each accept() to one of the
processes waiting in it). Each worker runs its own FrameServer, key pair, attestation document and KMS
connections. A worker that dies is replaced; its connections drop, so the relay's requests in flight on
them fail as `enclave_unavailable` (retryable) and are sent again. SIGTERM is passed on to every worker,
which drains; the supervisor waits for them within a bound. A worker whose supervisor is gone (its pipe
reads EOF) exits at once rather than serve on unsupervised.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from app.shared import deployment

log = logging.getLogger(__name__)

POLL_S = 0.2
RESTART_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0)  # by how many times a seat died within STABLE_S
STABLE_S = 30.0
STOP_MARGIN_S = 5.0  # on top of the workers' own drain bound


@dataclass(frozen=True)
class Seat:
    """What a worker process is told: which seat it fills and which descriptors it inherited."""

    index: int
    count: int
    listener_fd: int
    supervisor_fd: int

    @property
    def kms_connections(self) -> int:
        """This worker's share of the KMS connections; all workers together stay within the bound."""
        return kms_connections_per_worker(self.count)

    def argv(self) -> list[str]:
        return [
            "--worker-index", str(self.index), "--worker-count", str(self.count),
            "--listener-fd", str(self.listener_fd), "--supervisor-fd", str(self.supervisor_fd),
        ]  # fmt: skip


def kms_connections_per_worker(count: int) -> int:
    return max(deployment.KMS_CONNECTIONS // count, 1)


def default_count() -> int:
    """One worker per vCPU this process may run on (inside an enclave: its enclave_cpu_count)."""
    return min(len(os.sched_getaffinity(0)), deployment.KMS_CONNECTIONS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per vCPU)")
    for name in ("--worker-index", "--worker-count", "--listener-fd", "--supervisor-fd"):
        parser.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)


def seat_from(args: argparse.Namespace) -> Seat | None:
    """The seat a worker was started for, or None in the supervisor."""
    if args.worker_index is None:
        return None
    return Seat(args.worker_index, args.worker_count, args.listener_fd, args.supervisor_fd)


def worker_count(requested: int | None) -> int:
    count = default_count() if requested is None else requested
    if not 1 <= count <= deployment.KMS_CONNECTIONS:
        raise ValueError(f"workers must be 1-{deployment.KMS_CONNECTIONS}, got {count}")
    return count


def adopt_listener(seat: Seat) -> socket.socket:
    """The listening socket the supervisor bound (family and type come from the descriptor)."""
    return socket.socket(fileno=seat.listener_fd)


def exit_when_orphaned(seat: Seat) -> threading.Thread:
    """Leave at once when the supervisor's end of our pipe closes (it died, even by SIGKILL)."""

    def watch() -> None:
        while os.read(seat.supervisor_fd, 1):
            pass
        log.error("supervisor gone: worker exits", extra={"fields": {"worker": seat.index}})
        os._exit(1)

    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread


class Supervisor:
    """Starts `count` workers with `command(seat)`, replaces any that die, stops them on SIGTERM."""

    def __init__(
        self, listener: socket.socket, count: int, command: Callable[[Seat], list[str]], drain_s: float
    ) -> None:
        self._listener = listener
        self._count = count
        self._command = command
        self._drain_s = drain_s
        self._stop = threading.Event()
        self._read_end, self._write_end = os.pipe()  # the write end stays here: EOF means we are gone
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._deaths: dict[int, list[float]] = {}
        self.replaced = 0

    @property
    def pids(self) -> dict[int, int]:
        return {index: worker.pid for index, worker in self._workers.items()}

    def run(self) -> int:
        """Until stop(); then pass SIGTERM on, wait for the drain, and return 0."""
        for index in range(self._count):
            self._start(index)
        while not self._stop.wait(POLL_S):
            self._replace_dead()
        return self._shut_down()

    def stop(self) -> None:
        self._stop.set()

    def kill(self) -> None:
        """Second signal: no drain."""
        for worker in self._workers.values():
            if worker.poll() is None:
                worker.kill()

    def install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            if self._stop.is_set():
                self.kill()
                os._exit(1)
            log.info("stopping workers", extra={"fields": {"signal": signal.Signals(signum).name}})
            self.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _start(self, index: int) -> None:
        seat = Seat(index, self._count, self._listener.fileno(), self._read_end)
        fds = (self._listener.fileno(), self._read_end)
        # A process group of its own: a terminal's Ctrl-C (SIGINT to the whole foreground group) reaches only
        # the supervisor, which passes one SIGTERM on; a worker that got both would take the second signal
        # for "exit now" and drop its requests in flight instead of draining them.
        self._workers[index] = subprocess.Popen(  # noqa: S603 - our own argv
            self._command(seat), pass_fds=fds, process_group=0
        )
        log.info("worker started", extra={"fields": {"worker": index, "pid": self._workers[index].pid}})

    def _replace_dead(self) -> None:
        now = time.monotonic()
        for index, worker in list(self._workers.items()):
            code = worker.poll()
            if code is None:
                continue
            recent = [t for t in self._deaths.get(index, []) if now - t < STABLE_S]
            self._deaths[index] = [*recent, now]
            delay = RESTART_BACKOFF_S[min(len(recent), len(RESTART_BACKOFF_S) - 1)]
            log.warning(
                "worker died: replacing it",
                extra={"fields": {"worker": index, "pid": worker.pid, "status": code, "after_s": delay}},
            )
            if self._stop.wait(delay):
                return
            self._start(index)
            self.replaced += 1

    def _shut_down(self) -> int:
        for worker in self._workers.values():
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._drain_s + STOP_MARGIN_S
        for index, worker in self._workers.items():
            try:
                worker.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                log.warning("worker did not drain in time: killed", extra={"fields": {"worker": index}})
                worker.kill()
                worker.wait()
        os.close(self._write_end)
        os.close(self._read_end)
        self._listener.close()
        log.info("workers stopped", extra={"fields": {"replaced": self.replaced}})
        return 0

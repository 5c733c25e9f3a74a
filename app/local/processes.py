"""Child processes of local mode: start `python -m <module>`, wait until ready, log to the run directory,
stop with SIGTERM then SIGKILL after a bound. Context managers make sure nothing outlives its owner.

It never reads a child's output except the readiness line, and never prints it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
POLL_S = 0.05
REPO_ROOT = Path(__file__).resolve().parents[2]


class ChildFailed(RuntimeError):
    """A child exited or did not become ready in time (the message names it and its log file)."""


def free_port() -> int:
    """A port free right now on the loopback (bind to 0, read, release)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class ChildSpec:
    name: str
    module: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    drop_env_prefixes: tuple[str, ...] = ()  # inherited variables the child must not see

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    def environment(self) -> dict[str, str]:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(self.drop_env_prefixes or ("\0",))
        }
        return {**inherited, "PYTHONUNBUFFERED": "1", **self.env}


@dataclass
class Child:
    spec: ChildSpec
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def name(self) -> str:
        return self.spec.name

    def first_line(self) -> str | None:
        """The first complete stdout line, once written (the emulator's readiness line)."""
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        return text.split("\n", 1)[0] if "\n" in text else None

    def kill(self) -> None:
        """SIGKILL at once (tests of a crash) and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, grace_s: float = STOP_GRACE_S) -> int:
        """SIGTERM, wait up to `grace_s`, then SIGKILL; the exit status (negative = killed by a signal)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def start(spec: ChildSpec, run_dir: Path) -> Child:
    """Start the child in its own session (a terminal's Ctrl-C reaches only us; we stop children in order)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = run_dir / f"{spec.name}.stdout.log", run_dir / f"{spec.name}.stderr.log"
    with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            spec.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            env=spec.environment(), cwd=REPO_ROOT, start_new_session=True,
        )  # fmt: skip
    return Child(spec, process, stdout_path, stderr_path)


def wait_ready(child: Child, ready: Callable[[Child], bool], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll `ready(child)` until true; ChildFailed if the child exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready(child):
        code = child.process.poll()
        if code is not None:
            raise ChildFailed(f"{child.name} exited with status {code} (see {child.stderr_path})")
        if time.monotonic() > deadline:
            raise ChildFailed(f"{child.name} not ready after {timeout_s:g} s (see {child.stderr_path})")
        time.sleep(POLL_S)


@contextlib.contextmanager
def running(
    spec: ChildSpec,
    run_dir: Path,
    ready: Callable[[Child], bool],
    timeout_s: float = READY_TIMEOUT_S,
    grace_s: float = STOP_GRACE_S,
) -> Iterator[Child]:
    """Start, wait until ready, yield; always stop (SIGTERM, then SIGKILL after `grace_s`)."""
    child = start(spec, run_dir)
    try:
        wait_ready(child, ready, timeout_s)
        yield child
    finally:
        child.stop(grace_s)


def has_ready_line(child: Child) -> bool:
    return child.first_line() is not None


def accepts_on(port: int) -> Callable[[Child], bool]:
    return lambda _child: port_accepts(port)


def command_succeeds(spec: ChildSpec, timeout_s: float = 5.0) -> Callable[[Child], bool]:
    """Readiness by a probe command exiting 0 (e.g. `python -m app.parent ping`)."""

    def probe(_child: Child) -> bool:
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and module
                spec.command(), env=spec.environment(), cwd=REPO_ROOT, capture_output=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    return probe

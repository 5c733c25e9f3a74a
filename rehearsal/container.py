"""The rehearsed host: `systemd-nspawn --boot` over the run's root, in the rehearsal's network namespace.

Commands reach it through `nsenter` into its init's namespaces, and run as transient systemd units
(`systemd-run --pipe --wait`), so they get the manager's environment like anything the SSM agent starts
would. Stopping sends SIGTERM to nspawn, which powers the container off; SIGKILL after a bound.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

BOOT_TIMEOUT_S = 60.0
STOP_GRACE_S = 30.0
POLL_S = 0.5
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerError(RuntimeError):
    """The container did not boot, or died (the message points at its console log)."""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(child) for child in text.split()]
    return found


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Container:
    """`with Container(root, ...) as box:` boots the root with systemd; `box.run([...])` runs a command."""

    def __init__(
        self,
        root: Path,
        *,
        machine: str,
        netns: Path,
        binds_ro: Sequence[tuple[Path, str]],
        console: Path,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.root, self.machine, self.netns, self.console = root, machine, netns, console
        self.binds_ro, self.extra_args = binds_ro, extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def command(self) -> list[str]:
        binds = [f"--bind-ro={host}:{inside}" for host, inside in self.binds_ro]
        return [
            "systemd-nspawn", "--boot", "--quiet", "--register=no", "--keep-unit", "--console=pipe",
            f"--machine={self.machine}", f"--directory={self.root}",
            f"--network-namespace-path={self.netns}", *binds, *self.extra_args,
        ]  # fmt: skip

    def __enter__(self) -> Container:
        return self.start()

    def start(self) -> Container:
        with self.console.open("ab") as out:
            self._process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            self.leader = self._find_init()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _find_init(self) -> int:
        """The container's PID 1 seen from here: the descendant of nspawn that runs systemd."""
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise ContainerError(f"systemd-nspawn exited at boot (see {self.console})")
            queue = [self._process.pid] if self._process is not None else []
            while queue:
                pid = queue.pop()
                if _comm(pid) == "systemd":
                    return pid
                queue += _children(pid)
            time.sleep(POLL_S)
        raise ContainerError(
            f"no systemd inside the container after {BOOT_TIMEOUT_S:g} s (see {self.console})"
        )

    def enter(self, argv: Sequence[str]) -> list[str]:
        return [
            "nsenter",
            f"--target={self.leader}",
            "--all",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={PATH}",
            *argv,
        ]

    def run(self, argv: Sequence[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
        """A command run directly in the container's namespaces (as root, no unit): for inspection."""
        return subprocess.run(
            self.enter(argv), capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def run_unit(self, argv: Sequence[str], timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
        """A command run as a transient unit of the container's systemd, with its DefaultEnvironment."""
        return self.run(["systemd-run", "--quiet", "--pipe", "--wait", "--collect", *argv], timeout_s)

    def unit_state(self, unit: str) -> str:
        done = self.run(["systemctl", "show", "--property=ActiveState,Result", "--value", unit], 30)
        return " ".join(done.stdout.split())

    def journal(self, unit: str, lines: int | str = 30) -> str:
        """The unit's journal, `lines` last lines ("all" for the whole)."""
        done = self.run(["journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit], 30)
        return done.stdout

    def failed_units(self) -> list[str]:
        done = self.run(["systemctl", "list-units", "--failed", "--plain", "--no-legend"], 30)
        return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

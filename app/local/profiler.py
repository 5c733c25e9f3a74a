"""`make profile`: py-spy samples the enclave (every worker process) and the relay under the bench's load.

Writes flame graphs (`enclave-flame.svg`, `relay-flame.svg`) and the collapsed stacks they were drawn from
(`*-flame.txt`) into the run directory, and summarises the frames with the most samples. Only samples of
threads holding the GIL are kept (`--gil`): py-spy cannot tell a thread blocked in a socket read from one
that runs, and the GIL holder is the one spending Python CPU. Local mode only;
py-spy is a dev dependency and reads the target's memory, so it needs ptrace rights over it (we are its
parent's parent here, or root).
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SAMPLES_PER_S = 100
# The relay spends about 1 s of CPU on the bench's 1,000 cards: at 100 Hz that is ~100 samples, too few to
# rank its frames, so it is sampled ten times as often (py-spy's own CPU is not in the relay's accounting).
RELAY_SAMPLES_PER_S = 1000
STOP_GRACE_S = 30.0  # py-spy writes its files after SIGINT
FLAME_SVG = "{name}-flame.svg"
FLAME_STACKS = "{name}-flame.txt"


class ProfilerMissing(RuntimeError):
    """py-spy is not installed (it comes with the dev extras: pip install -e '.[dev]')."""


@dataclass
class Profiler:
    """Two py-spy recorders on one process tree: the SVG for people, the collapsed stacks for the summary."""

    pid: int
    run_dir: Path
    name: str = "enclave"
    rate: int = SAMPLES_PER_S
    _recorders: tuple[subprocess.Popen[bytes], ...] = ()

    def start(self) -> None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            raise ProfilerMissing("py-spy not found; install the dev extras (pip install -e '.[dev]')")
        common = [spy, "record", "--pid", str(self.pid), "--subprocesses", "--nonblocking", "--gil"]
        common += ["--rate", str(self.rate)]
        recorders = []
        for kind, pattern in (("flamegraph", FLAME_SVG), ("raw", FLAME_STACKS)):
            with (self.run_dir / f"py-spy-{self.name}-{kind}.log").open("ab") as errors:
                output = self.run_dir / pattern.format(name=self.name)
                command = [*common, "--format", kind, "--output", str(output)]
                # py-spy from our own environment, on our own child's pid
                recorders.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors))  # noqa: S603
        self._recorders = tuple(recorders)

    def stop(self) -> Path:
        """Stop sampling and wait for the files; the SVG's path."""
        for recorder in self._recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in self._recorders:
            try:
                recorder.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        return self.run_dir / FLAME_SVG.format(name=self.name)

    @property
    def stacks(self) -> Path:
        return self.run_dir / FLAME_STACKS.format(name=self.name)


def top_self(stacks_file: Path, limit: int = 10) -> list[tuple[str, float]]:
    """The frames that were on top of the stack most often, as (frame, share of all samples in %)."""
    return _top(stacks_file, limit, lambda frames: frames[-1:])


def top_inclusive(stacks_file: Path, limit: int = 10) -> list[tuple[str, float]]:
    """The frames present in the most samples (anywhere in the stack), as (frame, share in %)."""
    return _top(stacks_file, limit, lambda frames: list(set(frames)))


def _top(stacks_file: Path, limit: int, counted: Callable[[list[str]], list[str]]) -> list[tuple[str, float]]:
    """Folded stacks ("a;b;c N" per line): each sample counts once for every frame `counted` picks."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks_file.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        for frame in counted(stack.split(";")):
            counts[frame] += int(number)
        total += int(number)
    return [(frame, round(100 * n / total, 1)) for frame, n in counts.most_common(limit)] if total else []

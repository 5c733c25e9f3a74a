"""CPU time of a process and all its descendants, from the kernel's own accounting (`/proc/<pid>/stat`).

The benchmark's cost figures come from here: `utime + stime` of every live process in the tree, plus
`cutime + cstime` (what each of them has reaped from children that already exited), so a worker that
died and was replaced during a run is still counted. Linux only (proc(5)); local mode only.
Resolution is one clock tick (usually 10 ms) per process, which is why the bench measures whole phases.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# Field numbers (1-based) in /proc/<pid>/stat, after the "(comm)" field: see proc(5).
_PPID, _UTIME, _STIME, _CUTIME, _CSTIME = 4, 14, 15, 16, 17


class CpuAccountingError(RuntimeError):
    """The process to account for does not exist (or /proc is not there)."""


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    own_ticks: int  # utime + stime
    reaped_ticks: int  # cutime + cstime: exited children it has waited for, with their own descendants


def parse_stat(pid: int, text: str) -> ProcStat:
    """One /proc/<pid>/stat line; the command name may hold spaces or ')', so split after the last ')'."""
    rest = text[text.rindex(")") + 2 :].split()
    field = {n: int(rest[n - 3]) for n in (_PPID, _UTIME, _STIME, _CUTIME, _CSTIME)}
    return ProcStat(pid, field[_PPID], field[_UTIME] + field[_STIME], field[_CUTIME] + field[_CSTIME])


def read_all(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process visible now; ones that exit while we read are skipped."""
    stats: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        stats[int(entry.name)] = parse_stat(int(entry.name), text)
    return stats


def descendants(root: int, stats: Mapping[int, ProcStat]) -> set[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def tree_cpu_s(root: int, stats: Mapping[int, ProcStat] | None = None) -> float:
    """CPU seconds used so far by `root`, its live descendants and the children they have reaped."""
    stats = read_all() if stats is None else stats
    if root not in stats:
        raise CpuAccountingError(f"no process {root} in {PROC}")
    tree = descendants(root, stats)
    ticks = sum(stats[pid].own_ticks + stats[pid].reaped_ticks for pid in tree)
    return ticks / CLOCK_TICKS_PER_S


class CpuMeter:
    """CPU seconds each named process tree used between `start()` and `stop()`."""

    def __init__(self, roots: Mapping[str, int]) -> None:
        self._roots = dict(roots)
        self._started: dict[str, float] = {}

    def start(self) -> None:
        self._started = self._sample(self._roots.items())

    def stop(self) -> dict[str, float]:
        """{name: CPU seconds since start()}; start() must have been called."""
        if not self._started:
            raise CpuAccountingError("CpuMeter.stop() before start()")
        ended = self._sample(self._roots.items())
        return {name: round(ended[name] - self._started[name], 3) for name in self._roots}

    @staticmethod
    def _sample(roots: Iterable[tuple[str, int]]) -> dict[str, float]:
        stats = read_all()  # one snapshot for all trees, so they are sampled at the same moment
        return {name: tree_cpu_s(pid, stats) for name, pid in roots}

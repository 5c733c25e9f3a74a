"""Progress of a long step (or of a run of checks), drawn by tqdm on a terminal only; the caller prints
the step's one-line result.

Off a terminal (a file, a pipe, CI, an SSM document) nothing is drawn: tqdm's `disable=None` turns the bar
off when the stream is not a TTY (tqdm/tqdm, tqdm/std.py, `tqdm.__init__`), so a log file never holds
`\r` redraws. On a terminal the bar is erased when the step ends (`leave=False`), and the caller's line
takes its place. Counts only: no card data goes near it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import IO

from tqdm import tqdm


@contextlib.contextmanager
def progress(label: str, total: int, stream: IO[str] | None = None) -> Iterator[Callable[[int], None]]:
    """`with progress("queueing cards", 1000) as advance: ... advance(10)`: a bar on stderr's terminal."""
    bar = tqdm(
        total=total, desc=label, unit="card", file=stream or sys.stderr,
        disable=None, leave=False, dynamic_ncols=True,
    )  # fmt: skip

    def advance(count: int) -> None:
        bar.update(count)

    try:
        yield advance
    finally:
        bar.close()


@contextlib.contextmanager
def steps(total: int, stream: IO[str] | None = None) -> Iterator[Callable[[str], None]]:
    """`with steps(3) as doing: doing("pinging the enclave")`: the current step, on a terminal only."""
    bar = tqdm(
        total=total, file=stream or sys.stderr, disable=None, leave=False,
        bar_format="{desc} ({n}/{total})",
    )  # fmt: skip
    started = False

    def doing(label: str) -> None:
        nonlocal started
        if started:
            bar.update(1)
        started = True
        bar.set_description_str(label)

    try:
        yield doing
    finally:
        bar.close()

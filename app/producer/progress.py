"""Progress of a long step, drawn by tqdm on a terminal only; the caller prints the step's one-line result.

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

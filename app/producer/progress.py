"""A plain-text progress bar on a stream (stderr), shown only for long runs or an interactive terminal.

No dependency and no card data: it draws counts only.
"""

from __future__ import annotations

import sys
import time
from typing import IO

LONG_RUN_CARDS = 100
BAR_WIDTH = 30
MIN_REDRAW_S = 0.1


class Progress:
    """`Progress(label, total).advance(n)` redraws `label [#####.....] 50/100`; `close()` ends the line."""

    def __init__(self, label: str, total: int, stream: IO[str] | None = None, enabled: bool | None = None):
        self._label = label
        self._total = max(total, 1)
        self._stream = stream or sys.stderr
        self._done = 0
        self._last_draw = 0.0
        self.enabled = should_show(total, self._stream) if enabled is None else enabled

    def advance(self, count: int = 1) -> None:
        self._done = min(self._done + count, self._total)
        now = time.monotonic()
        if self.enabled and (now - self._last_draw >= MIN_REDRAW_S or self._done == self._total):
            self._last_draw = now
            self._stream.write("\r" + render(self._label, self._done, self._total))
            self._stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._stream.write("\r" + render(self._label, self._done, self._total) + "\n")
            self._stream.flush()


def should_show(total: int, stream: IO[str]) -> bool:
    return total >= LONG_RUN_CARDS or stream.isatty()


def render(label: str, done: int, total: int) -> str:
    filled = BAR_WIDTH * done // max(total, 1)
    return f"{label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"

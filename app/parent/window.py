"""The relay's bound on requests in flight to the enclave, taken a whole batch at a time.

A batch takes all its slots at once or waits for them. Taking them one by one, a batch holds what it got
while it waits for the rest; with more pollers than the window has room for whole batches (5 pollers x 10
against 32), every poller can end up holding part of the window with nothing sent, each waiting for a slot
another holds, until the request timeout turns them all into `busy` (hold and wait).
"""

from __future__ import annotations

import threading


class Window:
    """At most `size` slots taken at any time; thread-safe."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a window needs at least one slot, not {size}")
        self.size = size
        self._free = size
        self._changed = threading.Condition()

    def acquire(self, count: int, timeout_s: float) -> int:
        """`min(count, size)` slots taken together, or 0 when they did not come free within `timeout_s`."""
        want = min(count, self.size)
        with self._changed:
            if not self._changed.wait_for(lambda: self._free >= want, timeout_s):
                return 0
            self._free -= want
            return want

    def release(self, count: int = 1) -> None:
        with self._changed:
            if self._free + count > self.size:
                raise ValueError(f"released {count} slots with only {self.size - self._free} taken")
            self._free += count
            self._changed.notify_all()

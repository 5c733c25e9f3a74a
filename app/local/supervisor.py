"""Restarts local-mode children that die, as systemd does for the relay and enclave units on the host.

Each watched child is restarted after a back-off that doubles with every failure in a row (1 s up to
30 s) and resets once the child has stayed up for `STABLE_S`. Every exit and restart is logged. A child
its owner stopped on purpose (its slot reads None) is left alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from app.local.processes import Child, ChildFailed
from app.shared import logs

log = logging.getLogger(__name__)

RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
STABLE_S = 60.0
POLL_S = 0.5


@dataclass
class Watched:
    """One supervised slot: `current()` reads the running child (None: stopped on purpose)."""

    name: str
    current: Callable[[], Child | None]
    restart: Callable[[], object]
    failures: int = 0
    due: float | None = None
    up_since: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, watched: Sequence[Watched], lock: threading.RLock) -> None:
        self._watched = list(watched)
        self._lock = lock  # the owner's: start/stop of a child and our restart never interleave
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            for watched in self._watched:
                with self._lock:
                    if not self._stop.is_set():
                        self.check(watched)

    def check(self, watched: Watched) -> None:
        """One look at one slot: note an exit, or restart once its back-off has passed."""
        child = watched.current()
        now = time.monotonic()
        if child is None:
            watched.due = None  # stopped on purpose
            return
        if child.process.poll() is None:
            if now - watched.up_since > STABLE_S:
                watched.failures = 0
            return
        if watched.due is None:
            delay = RESTART_BACKOFF_S[min(watched.failures, len(RESTART_BACKOFF_S) - 1)]
            watched.due = now + delay
            log.warning(
                "child exited; restarting after back-off",
                extra=logs.fields(child=watched.name, status=child.process.returncode, delay_s=delay),
            )
        elif now >= watched.due:
            self._restart(watched)

    def _restart(self, watched: Watched) -> None:
        watched.failures += 1
        watched.due = None
        watched.up_since = time.monotonic()
        try:
            watched.restart()
        except ChildFailed as error:  # noted as exited again on the next look, with a longer back-off
            log.error("restart failed", extra=logs.fields(child=watched.name, error=str(error)))
            return
        log.info("child restarted", extra=logs.fields(child=watched.name, restarts=watched.failures))

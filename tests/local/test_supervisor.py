"""The local supervisor: a child that dies is restarted after a back-off and logged; a stopped one is not."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.local import processes, supervisor
from app.local.processes import Child, ChildSpec
from app.local.supervisor import Supervisor, Watched

SLEEPER = ChildSpec("sleeper", "timeit", ("-n", "1", "import time; time.sleep(60)"))


def _wait_for(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_dead_child_is_restarted_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_S", (0.1,))
    monkeypatch.setattr(supervisor, "POLL_S", 0.05)
    caplog.set_level(logging.INFO, logger="app.local.supervisor")
    slot: dict[str, Child | None] = {"child": processes.start(SLEEPER, tmp_path)}

    def restart() -> None:
        slot["child"] = processes.start(SLEEPER, tmp_path)

    watcher = Supervisor([Watched("sleeper", lambda: slot["child"], restart)], threading.RLock()).start()
    first = slot["child"]
    assert first is not None
    first.kill()
    _wait_for(lambda: slot["child"] is not first)
    watcher.stop()
    second = slot["child"]
    assert second is not None
    assert second.process.poll() is None
    second.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert "child exited; restarting after back-off" in messages
    assert "child restarted" in messages


def test_a_child_stopped_on_purpose_stays_stopped(tmp_path: Path) -> None:
    restarts: list[int] = []
    watched = Watched("gone", lambda: None, lambda: restarts.append(1))
    Supervisor([watched], threading.RLock()).check(watched)
    assert restarts == []
    assert watched.due is None


def test_the_back_off_grows_with_each_failure_in_a_row(tmp_path: Path) -> None:
    child = processes.start(ChildSpec("quitter", "json.tool", ("/nonexistent",)), tmp_path)
    child.process.wait(timeout=20)
    watched = Watched("quitter", lambda: child, lambda: None, failures=3)
    before = time.monotonic()
    Supervisor([watched], threading.RLock()).check(watched)
    assert watched.due is not None
    assert watched.due - before >= supervisor.RESTART_BACKOFF_S[3]

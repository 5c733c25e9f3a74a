from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from app.local import processes
from app.local.processes import ChildFailed, ChildSpec

# `python -m` needs a module: these small ones ship with the standard library.
SLEEPER = ChildSpec("sleeper", "timeit", ("-n", "1", "import time; time.sleep(60)"))


def test_free_port_can_be_bound() -> None:
    port = processes.free_port()
    with socket.socket() as probe:
        probe.bind((processes.LOOPBACK, port))


def test_running_stops_the_child_on_exit(tmp_path: Path) -> None:
    with processes.running(SLEEPER, tmp_path, lambda _c: True) as child:
        assert child.process.poll() is None
    assert child.process.poll() is not None


def test_a_child_that_exits_before_ready_is_reported(tmp_path: Path) -> None:
    spec = ChildSpec("quitter", "json.tool", ("/nonexistent/file.json",))
    with (
        pytest.raises(ChildFailed, match="quitter exited"),
        processes.running(spec, tmp_path, lambda _c: False),
    ):
        pass


def test_a_child_not_ready_in_time_is_stopped(tmp_path: Path) -> None:
    with (
        pytest.raises(ChildFailed, match="not ready"),
        processes.running(SLEEPER, tmp_path, lambda _c: False, timeout_s=0.3),
    ):
        pass


def test_stop_escalates_to_sigkill_after_the_grace(tmp_path: Path) -> None:
    stubborn = ChildSpec(
        "stubborn",
        "timeit",
        ("-n", "1", "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(60)"),
    )
    child = processes.start(stubborn, tmp_path)
    time.sleep(0.5)
    assert child.stop(grace_s=0.5) == -9


def test_output_goes_to_log_files_in_the_run_dir(tmp_path: Path) -> None:
    spec = ChildSpec("printer", "timeit", ("-n", "1", "print('hello from the child')"))
    child = processes.start(spec, tmp_path)
    child.process.wait(timeout=20)
    assert "hello from the child" in (tmp_path / "printer.stdout.log").read_text()


def test_environment_prefixes_can_be_withheld(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    spec = ChildSpec("c", "m", env={"KEEP": "1"}, drop_env_prefixes=("AWS_",))
    environment = spec.environment()
    assert "AWS_SECRET_ACCESS_KEY" not in environment
    assert environment["KEEP"] == "1"

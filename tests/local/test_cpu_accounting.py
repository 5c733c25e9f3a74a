"""The bench's CPU accounting against processes that burn a known amount of CPU (no wall-time asserts)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.local import cpu_accounting
from app.local.cpu_accounting import CpuAccountingError, CpuMeter, parse_stat

# The root burns ROOT_S of CPU itself and has a child burn CHILD_S and exit (reaped: counted through
# cutime), while another child burns LIVE_S and stays alive (counted as a live descendant).
ROOT_S, CHILD_S, LIVE_S = 0.3, 0.4, 0.3
BURNER = Path(__file__).with_name("cpu_burner.py")


@pytest.fixture
def burner() -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, str(BURNER), str(ROOT_S), str(CHILD_S), str(LIVE_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    yield process
    process.kill()
    process.wait()


def test_a_tree_is_charged_its_own_its_live_and_its_reaped_childrens_cpu(
    burner: subprocess.Popen[str],
) -> None:
    assert burner.stdin is not None
    assert burner.stdout is not None
    meter = CpuMeter({"burner": burner.pid})
    meter.start()
    burner.stdin.write("go\n")
    burner.stdin.flush()
    assert burner.stdout.readline().strip() == "done"
    used = meter.stop()["burner"]
    # Each process may add interpreter start-up and a few ticks of rounding; never less than it burnt.
    expected = ROOT_S + CHILD_S + LIVE_S
    assert expected - 0.05 <= used <= expected + 1.5


def test_an_idle_process_is_charged_almost_nothing(burner: subprocess.Popen[str]) -> None:
    meter = CpuMeter({"burner": burner.pid})
    meter.start()
    assert meter.stop()["burner"] < 0.1


def test_the_command_name_may_hold_spaces_and_parentheses() -> None:
    line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 30 20 20 0 1 0 100 0 0"
    stat = parse_stat(42, line)
    assert (stat.ppid, stat.own_ticks, stat.reaped_ticks) == (7, 300, 50)


def test_an_unknown_process_is_a_named_error() -> None:
    with pytest.raises(CpuAccountingError, match="no process"):
        cpu_accounting.tree_cpu_s(2**22 + 7, {})


def test_stop_before_start_is_a_named_error() -> None:
    with pytest.raises(CpuAccountingError, match="before start"):
        CpuMeter({"self": 1}).stop()

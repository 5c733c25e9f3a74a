"""`python -m app.local bench` on a few cards: both phases run and the last line is the JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.local.processes import REPO_ROOT

from .pipeline_helpers import full_numbers_in

pytestmark = pytest.mark.slow

KEYS = {
    "cards", "cards_per_s", "p50_ms", "p99_ms", "ceiling_cards_per_s", "ratio",
    "enclave_cpu_ms_per_card", "relay_cpu_ms_per_card", "emulator_cpu_ms_per_card", "ceiling_cpu_ms_per_card",
    "enclave_own_p50_ms", "enclave_own_p99_ms", "projected_cards_per_s", "projection", "lost", "duplicates",
    "relay_sqs_requests_per_card", "relay_sqs_requests",
}  # fmt: skip


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    run_dir = tmp_path_factory.mktemp("bench")
    command = [sys.executable, "-m", "app.local", "--run-dir", str(run_dir), "bench", "--cards", "30"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180, check=False)
    return run_dir, done


def test_the_last_line_is_the_json_summary(bench_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, done = bench_run
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert set(summary) >= KEYS
    assert summary["cards"] == 30
    assert summary["enclave_cpu_ms_per_card"] > 0  # the OS charged the enclave's workers something
    assert summary["projection"]["bound_by"] in ("enclave", "relay")
    assert (summary["lost"], summary["duplicates"]) == (0, 0)
    requests = summary["relay_sqs_requests"]
    for batched in ("ReceiveMessage", "DeleteMessageBatch", "SendMessageBatch"):
        assert requests[batched] >= 1 / 10  # ten messages a call at most: at least one call per ten cards
    assert summary["relay_sqs_requests_per_card"] == pytest.approx(sum(requests.values()), abs=0.002)
    assert summary["ratio"] == pytest.approx(
        summary["cards_per_s"] / summary["ceiling_cards_per_s"], rel=0.01
    )


def test_loading_off_a_terminal_is_one_line_per_phase_and_no_redraws(
    bench_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = bench_run
    loaded = [line for line in done.stdout.splitlines() if " cards loaded in " in line]
    assert [line.split(":")[0] for line in loaded] == ["pipeline", "ceiling"]
    assert "\r" not in done.stdout + done.stderr


def test_the_ceiling_ran_as_its_own_process(bench_run: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    run_dir, _ = bench_run
    assert json.loads((run_dir / "ceiling.stdout.log").read_text().splitlines()[-1])["cards"] == 30


def test_no_output_or_log_of_the_bench_holds_a_full_number(
    bench_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, done = bench_run
    assert full_numbers_in(sorted(run_dir.glob("*.log")), [done.stdout, done.stderr]) == []

"""`python -m app.local demo` as a user runs it: exit codes, and no full card number anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.local.processes import REPO_ROOT

from .pipeline_helpers import full_numbers_in

pytestmark = pytest.mark.slow


def _demo(run_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.local", "--run-dir", str(run_dir), "demo", *extra]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    run_dir = tmp_path_factory.mktemp("demo")
    return run_dir, _demo(run_dir, "--count", "10")


def test_the_demo_exits_0_with_ten_correct_results(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert sum(" ok " in line for line in done.stdout.splitlines()) == 10
    assert "10/10 ok" in done.stdout


def test_the_demo_prints_human_lines_only_and_keeps_json_logs_in_the_run_dir(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    """Output to a file, as `make demo > out.txt`: no progress redraws, no JSON log line on stdout."""
    run_dir, done = demo_run
    assert "\r" not in done.stdout
    assert [line for line in done.stdout.splitlines() if line.lstrip().startswith("{")] == []
    assert done.stdout.splitlines()[0].startswith("starting the local stack")
    # stderr: only the loud line that results are verified against the local root, not AWS's
    assert [line.split(" (CN=")[0] for line in done.stderr.splitlines()] == [
        f"WARNING: results are verified against the root {run_dir / 'pki' / 'attestation-root.pem'}"
    ]
    (entry,) = [json.loads(line) for line in (run_dir / "producer.log").read_text().splitlines()]
    assert entry["msg"] == "cards queued"


def test_the_demo_ends_with_the_parents_own_decrypt_refused_by_the_deny_statement(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, done = demo_run
    tail = done.stdout.split("the parent tries it itself:", 1)[1]
    assert "with the relay's own credentials and no attestation" in tail
    assert "KMS refused: AccessDeniedException: User: arn:aws:sts::" in tail
    assert "with an explicit deny in a resource-based policy" in tail
    assert tail.rstrip().endswith(
        "the key policy statement that denied it: DenyDecryptOutsideThePinnedEnclave"
    )


def test_no_output_or_log_of_the_demo_holds_a_full_number(
    demo_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, done = demo_run
    logs = sorted(p for p in run_dir.rglob("*") if p.is_file() and p.suffix == ".log")
    assert len(logs) >= 6  # stdout and stderr of emulator, enclave and relay
    assert full_numbers_in(logs, [done.stdout, done.stderr]) == []


def test_the_tamper_demo_passes_when_every_card_is_refused(tmp_path: Path) -> None:
    # The relay retries access_denied within its first minutes (KMS propagation), so each card is parked after
    # its last allowed receive, about 30 s of back-off later; the producer shows the unverified refusals.
    done = _demo(tmp_path, "--count", "2", "--tamper", "--timeout", "45")
    assert done.returncode == 0, done.stdout[-2000:]
    assert done.stdout.count("access_denied: gave up after 5 attempts: KMS AccessDeniedException") == 2
    assert done.stdout.count('denied by statement "DenyDecryptOutsideThePinnedEnclave"') == 2
    assert "all 2 cards are parked on the dead-letter queue with error_code=access_denied" in done.stdout
    assert full_numbers_in(sorted(tmp_path.glob("*.log")), [done.stdout, done.stderr]) == []

"""`python -m app.local serve`: prints how to use the stack, keeps it up, stops everything on SIGTERM."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.keypolicy.key_arn import require_key_arn
from app.local import processes
from app.local.processes import Child, ChildSpec
from app.local.provision import local_client

from .pipeline_helpers import full_numbers_in

pytestmark = pytest.mark.slow

LAST_LINE_MARK = "# the dead-letter queue"


def _printed(child: Child) -> str:
    return child.stdout_path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Child, dict[str, str]]]:
    run_dir = tmp_path_factory.mktemp("serve")
    spec = ChildSpec("serve", "app.local", ("serve", "--run-dir", str(run_dir / "stack")))  # after it
    child = processes.start(spec, run_dir)
    try:
        processes.wait_ready(child, lambda c: LAST_LINE_MARK in _printed(c), timeout_s=60)
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in _printed(child).splitlines()
            if line.startswith("export ")
        )
        yield child, exports
    finally:
        child.stop()


def test_it_prints_the_endpoint_and_the_exports(serving: tuple[Child, dict[str, str]]) -> None:
    _, exports = serving
    assert exports["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert {"CARDS_QUEUE_URL", "RESULTS_QUEUE_URL", "KMS_KEY_ID", "ENCLAVE_URL"} <= set(exports)
    assert require_key_arn(exports["KMS_KEY_ID"]) == exports["KMS_KEY_ID"]  # the key's ARN, as on AWS


def test_it_prints_the_aws_cli_recipe_with_fileb_plaintext(serving: tuple[Child, dict[str, str]]) -> None:
    printed = _printed(serving[0])
    assert 'kms encrypt --key-id "$KMS_KEY_ID" --plaintext fileb://' in printed
    assert "--encryption-context app=nitro-enclave-demo,card_id=hand-1" in printed
    assert "sqs send-message" in printed
    assert "sqs receive-message" in printed


def test_the_printed_endpoint_serves_the_provisioned_queues(serving: tuple[Child, dict[str, str]]) -> None:
    _, exports = serving
    sqs = local_client("sqs", exports["AWS_ENDPOINT_URL"])
    assert exports["CARDS_QUEUE_URL"] in sqs.list_queues()["QueueUrls"]


def _child_pid(parent: Child, module_args: str) -> int:
    """The pid of `parent`'s own child whose command line ends with `module_args` (never by name alone)."""
    children = Path(f"/proc/{parent.process.pid}/task/{parent.process.pid}/children").read_text().split()
    for pid in children:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        if command.endswith(module_args):
            return int(pid)
    raise AssertionError(f"no child running {module_args!r}")


def _wait_for_lines(path: Path, needle: str, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.is_file() or path.read_text().count(needle) < count:
        assert time.monotonic() < deadline, f"fewer than {count} lines with {needle} in {path.name}"
        time.sleep(0.2)


def test_a_killed_relay_is_restarted_and_logged(serving: tuple[Child, dict[str, str]]) -> None:
    child, _ = serving
    relay_log = Path(child.spec.args[-1]) / "relay.stderr.log"
    _wait_for_lines(relay_log, '"relay started"', 1)  # the first relay is really up
    os.kill(_child_pid(child, "-m app.parent run"), signal.SIGKILL)
    _wait_for_lines(relay_log, '"relay started"', 2)
    assert "child exited; restarting after back-off" in child.stderr_path.read_text()
    assert "child restarted" in child.stderr_path.read_text()


def test_sigterm_stops_the_stack_and_exits_0(serving: tuple[Child, dict[str, str]]) -> None:
    child, exports = serving
    port = int(exports["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    child.process.send_signal(signal.SIGTERM)
    assert child.process.wait(timeout=40) == 0
    time.sleep(0.2)
    assert not processes.port_accepts(port)


def test_no_printed_line_holds_a_full_number(serving: tuple[Child, dict[str, str]]) -> None:
    assert full_numbers_in([serving[0].stdout_path, serving[0].stderr_path]) == []

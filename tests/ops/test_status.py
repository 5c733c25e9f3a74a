"""`status`: each part's verdict from recorded output, and a local run against moto and a TCP enclave."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import pytest

from app.ops import __main__ as ops_main
from app.ops import status
from app.ops.findings import Status
from tests.enclave.server_helpers import running_server, skewed_handler

FIXTURES = Path(__file__).parent / "fixtures"


def test_recent_errors_keep_warnings_and_errors_only() -> None:
    finding = status.recent_errors((FIXTURES / "relay_journal_errors.txt").read_text())
    assert finding.status is Status.WARN
    assert "2 line(s)" in finding.what
    assert "access_denied" in finding.what
    assert "relay started" not in finding.what


def test_recent_errors_pick_up_nitro_cli_e_codes() -> None:
    finding = status.recent_errors((FIXTURES / "nitro_cli_e27.txt").read_text())
    assert "[ E27 ]" in finding.what


def test_a_non_empty_dead_letter_queue_is_a_warning() -> None:
    attributes = {"ApproximateNumberOfMessages": "2", "ApproximateNumberOfMessagesNotVisible": "0"}
    assert status.queue_finding("dead-letter", attributes, dead_letter=True).status is Status.WARN
    assert status.queue_finding("cards", attributes, dead_letter=False).status is Status.OK


def test_an_old_card_means_the_relay_is_behind() -> None:
    assert status.age_finding(900).status is Status.WARN
    assert status.age_finding(3).status is Status.OK
    assert status.age_finding(None).status is Status.SKIP


def test_measurements_come_from_describe_enclaves() -> None:
    finding = status.enclave_measurements((FIXTURES / "describe_running.json").read_text())
    assert (FIXTURES / "pinned_pcr0.txt").read_text().strip() in finding.what


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Queues on the shared emulator, reached as local mode reaches it (boto3 honours AWS_ENDPOINT_URL)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    sqs = boto3.client("sqs", region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    urls = {
        name: sqs.create_queue(QueueName=f"{name}-{suffix}")["QueueUrl"]
        for name in ("cards", "dlq", "results")
    }
    sqs.send_message(QueueUrl=urls["dlq"], MessageBody="{}")
    return {
        "AWS_REGION": "us-east-1",
        "CARDS_QUEUE_URL": urls["cards"],
        "DEAD_LETTER_QUEUE_URL": urls["dlq"],
        "RESULTS_QUEUE_URL": urls["results"],
    }


def test_local_status_reports_queues_and_a_live_enclave(aws: dict[str, str]) -> None:
    with running_server() as (url, _):
        findings = {f.check: f for f in status.gather(aws, url)}
    assert findings["enclave ping"].status is Status.OK
    assert findings["enclave clock"].status is Status.SKIP  # this stand-in enclave reports no clock
    assert findings["queue cards"].what == "0 waiting, 0 in flight"
    assert findings["queue dead-letter"].status is Status.WARN
    assert findings["queue results"].status is Status.OK


def test_status_reports_the_clock_skew_the_enclave_measured(aws: dict[str, str]) -> None:
    with running_server(skewed_handler(400.0)) as (url, _):
        findings = {f.check: f for f in status.gather(aws, url)}
    assert findings["enclave clock"].status is Status.WARN
    assert findings["enclave clock"].what.startswith("400.000 s ahead of the NSM's signed time; corrected")


def test_status_says_when_the_enclave_does_not_answer(aws: dict[str, str]) -> None:
    findings = {f.check: f for f in status.gather(aws, "tcp://127.0.0.1:9")}
    assert findings["enclave ping"].status is Status.FAIL
    assert "no answer over tcp://127.0.0.1:9" in findings["enclave ping"].what


def test_status_command_prints_json(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    with running_server() as (url, _):
        code = ops_main.main(["--json", "status", "--enclave-url", url])
    checks = {entry["check"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert checks["enclave ping"]["status"] == "ok"
    assert code == 0


def test_a_queue_without_url_says_which_variable_to_set() -> None:
    finding = status.queue_finding("cards", None, dead_letter=False, env_name="CARDS_QUEUE_URL")
    assert finding.status is Status.SKIP
    assert "set CARDS_QUEUE_URL" in finding.todo


def test_an_unreadable_queue_says_why_in_the_finding_not_in_a_log_line(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = aws["CARDS_QUEUE_URL"].rsplit("/", 1)[0] + "/no-such-queue"
    findings = {f.check: f for f in status.gather({**aws, "CARDS_QUEUE_URL": missing}, "tcp://127.0.0.1:9")}
    assert findings["queue cards"].what.startswith("not readable: ")
    assert "sqs:GetQueueAttributes" in findings["queue cards"].todo
    assert capsys.readouterr().err == ""


def test_gather_announces_each_of_its_steps(aws: dict[str, str]) -> None:
    heard: list[str] = []
    status.gather(aws, "tcp://127.0.0.1:9", heard.append)
    assert len(heard) == status.GATHER_STEPS
    assert "pinging the enclave over tcp://127.0.0.1:9" in heard


def test_status_off_a_terminal_prints_only_the_findings(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    with running_server() as (url, _):
        ops_main.main(["status", "--enclave-url", url])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert all(line.startswith(("[", "       ")) for line in lines)
    assert "[OK  ] enclave ping" in captured.out
    assert captured.err == ""

"""The bench's count of the relay's SQS requests: read from the relay's start-up and stop lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.local import bench
from app.local.processes import ChildFailed


def _log(path: Path, *entries: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries), encoding="utf-8")
    return path


def test_requests_are_those_between_start_up_and_stop(tmp_path: Path) -> None:
    log = _log(
        tmp_path / "relay.stderr.log",
        {"msg": bench.RELAY_STARTED, "sqs_requests": {"GetQueueAttributes": 3}},
        {"msg": "card processed", "card_id": "c-1"},
        {"msg": bench.RELAY_STOPPED, "sqs_requests": {"GetQueueAttributes": 3, "ReceiveMessage": 12,
                                                      "DeleteMessageBatch": 10}},
    )  # fmt: skip
    assert bench.relay_sqs_requests(log) == {"DeleteMessageBatch": 10, "ReceiveMessage": 12}


def test_a_relay_that_did_not_log_its_stop_fails_the_bench(tmp_path: Path) -> None:
    log = _log(tmp_path / "relay.stderr.log", {"msg": bench.RELAY_STARTED, "sqs_requests": {}})
    with pytest.raises(ChildFailed, match="relay stopped"):
        bench.relay_sqs_requests(log)


def test_the_line_names_each_operation_per_card() -> None:
    line = bench.describe_requests({"DeleteMessageBatch": 0.1, "ReceiveMessage": 0.104}, 0.93)
    assert line == (
        "relay: 0.204 SQS requests per card (DeleteMessageBatch 0.100, ReceiveMessage 0.104); "
        "0.93 ms of CPU per card"
    )

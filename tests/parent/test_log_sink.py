"""The parent's enclave log sink over real TCP: one JSON line per frame, bad input contained."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from app.parent import __main__ as parent_main
from app.parent import log_sink
from app.parent.log_sink import parse_line
from app.shared import framing, transport
from tests.parent.sink_helpers import running_sink


def _send(url: str, payload: bytes) -> None:
    sock = transport.connect(transport.parse_url(url))
    sock.sendall(payload)
    sock.close()


def _wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def _frame(entry: object) -> bytes:
    return framing.encode_frame(json.dumps(entry).encode())


def test_a_line_keeps_the_enclave_fields_and_gains_its_source() -> None:
    assert parse_line(b'{"msg":"hi","id":3}') == {"msg": "hi", "id": 3, "source": "enclave"}


@pytest.mark.parametrize("frame", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_anything_but_a_json_object_is_refused(frame: bytes) -> None:
    assert parse_line(frame) is None


def test_each_frame_becomes_one_stdout_line() -> None:
    with running_sink() as (url, sink, out):
        _send(url, _frame({"msg": "one"}) + _frame({"msg": "two", "level": "warning"}))
        _wait_for(lambda: sink.lines >= 2)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["msg"] for line in lines] == ["one", "two"]
    assert all(line["source"] == "enclave" for line in lines)


def test_a_bad_frame_is_skipped_and_the_connection_goes_on() -> None:
    with running_sink() as (url, sink, out):
        _send(url, framing.encode_frame(b"[not an object]") + _frame({"msg": "after"}))
        _wait_for(lambda: sink.lines >= 1)
    assert sink.rejected == 1
    assert json.loads(out.getvalue())["msg"] == "after"


def test_an_oversized_frame_ends_that_connection_only() -> None:
    with running_sink() as (url, sink, out):
        _send(url, framing.HEADER.pack(log_sink.MAX_LINE_FRAME_BYTES + 1) + b"x" * 10)
        _send(url, _frame({"msg": "next connection"}))
        _wait_for(lambda: sink.lines >= 1)
    assert json.loads(out.getvalue())["msg"] == "next connection"


def test_logs_command_stops_cleanly_on_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    timer = threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        code = parent_main.main(["logs", "--listen", "tcp://127.0.0.1:0"])
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == 0
    assert "enclave log sink stopped" in capsys.readouterr().err


def test_logs_command_fails_on_a_bad_listen_url() -> None:
    assert parent_main.main(["logs", "--listen", "udp://nowhere:1"]) == 1

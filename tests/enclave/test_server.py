"""The enclave's frame server over real TCP sockets: concurrency, bad input, and draining."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from app.enclave import server as server_module
from app.shared import framing, protocol, transport
from app.shared.protocol import ErrorCode, Op, Request
from tests.enclave.server_helpers import roundtrip, running_server


def _frame(request: Request) -> bytes:
    return framing.encode_frame(protocol.encode_request(request))


def test_answers_arrive_by_id_even_out_of_order() -> None:
    with running_server() as (url, _):
        slow = _frame(Request(1, Op.DECRYPT, {"sleep": 0.3, "echo": "slow"}))
        fast = _frame(Request(2, Op.DECRYPT, {"echo": "fast"}))
        answers = roundtrip(url, slow + fast, read_timeout_s=1.0)
    assert [(a.id, a.body) for a in answers] == [(2, {"echo": "fast"}), (1, {"echo": "slow"})]


def test_garbage_gets_an_error_and_the_connection_keeps_serving() -> None:
    with running_server() as (url, _):
        stream = framing.encode_frame(b"{nonsense") + _frame(Request(5, Op.PING))
        answers = roundtrip(url, stream, read_timeout_s=0.5)
    assert answers[0].error is not None
    assert answers[0].error.code is ErrorCode.BAD_REQUEST
    assert answers[1].id == 5
    assert answers[1].ok


def test_oversized_frame_gets_an_error_and_the_connection_closes() -> None:
    with running_server() as (url, _):
        answers = roundtrip(url, framing.HEADER.pack(framing.MAX_FRAME_BYTES + 1))
    assert len(answers) == 1
    assert answers[0].error is not None
    assert "exceeds" in answers[0].error.message


def test_half_sent_frame_is_dropped_after_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "PARTIAL_FRAME_TIMEOUT_S", 0.5)
    with running_server() as (url, _):
        answers = roundtrip(url, _frame(Request(1, Op.PING))[:6], read_timeout_s=5)
    assert answers[0].error is not None
    assert "incomplete" in answers[0].error.message  # the server's answer: our read timeout gives none


def test_a_failing_handler_answers_internal_and_the_server_lives_on() -> None:
    with running_server() as (url, _):
        stream = _frame(Request(1, Op.DECRYPT, {"boom": True})) + _frame(Request(2, Op.PING))
        answers = sorted(roundtrip(url, stream, read_timeout_s=0.5), key=lambda a: a.id)
    assert answers[0].error is not None
    assert answers[0].error.code is ErrorCode.INTERNAL
    assert answers[0].error.retryable
    assert answers[1].ok


def test_many_connections_at_once() -> None:
    results: list[int] = []
    with running_server() as (url, _):

        def client(n: int) -> None:
            answers = roundtrip(url, _frame(Request(n, Op.DECRYPT, {"echo": n})), read_timeout_s=0.5)
            results.extend(a.body["echo"] for a in answers if a.body)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(1, 21)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(results) == list(range(1, 21))


def test_stop_lets_requests_in_flight_finish() -> None:
    with running_server() as (url, server):
        sock = transport.connect(transport.parse_url(url))
        sock.sendall(_frame(Request(1, Op.DECRYPT, {"sleep": 0.5, "echo": "done"})))
        time.sleep(0.1)
        assert server.stop(drain_timeout_s=3)
        decoder = framing.FrameDecoder()
        frames = decoder.feed(sock.recv(65536))
        sock.close()
    assert protocol.decode_response(frames[0]).body == {"echo": "done"}


def _read_frames(sock: socket.socket, count: int) -> list[protocol.Response]:
    decoder = framing.FrameDecoder()
    answers: list[protocol.Response] = []
    while len(answers) < count and (data := sock.recv(65536)):
        answers += [protocol.decode_response(f) for f in decoder.feed(data)]
    return answers


def test_deeply_nested_json_gets_an_error_frame_and_the_connection_keeps_serving() -> None:
    with running_server() as (url, _):
        nested = framing.encode_frame(b"[" * 131_071 + b"]" * 131_071)
        sock = transport.connect(transport.parse_url(url))
        sock.sendall(nested + _frame(Request(9, Op.PING)))
        answers = _read_frames(sock, 2)
        sock.close()
    assert answers[0].error is not None
    assert answers[0].error.code is ErrorCode.BAD_REQUEST
    assert (answers[1].id, answers[1].ok) == (9, True)


def test_a_drip_fed_frame_is_dropped_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "PARTIAL_FRAME_TIMEOUT_S", 1.0)
    frame = _frame(Request(1, Op.DECRYPT, {"echo": "x" * 40}))
    with running_server() as (url, _):
        sock = transport.connect(transport.parse_url(url))
        sock.settimeout(0.25)
        answers: list[protocol.Response] = []
        sent = 0
        for sent in range(1, len(frame) + 1):  # one byte at a time, each well inside a per-read timeout
            try:
                sock.sendall(frame[sent - 1 : sent])
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            answers = [protocol.decode_response(f) for f in framing.FrameDecoder().feed(data)]
            break
        sock.close()
    assert sent < len(frame)  # dropped before the peer finished it
    assert answers[0].error is not None
    assert "after its first byte" in answers[0].error.message


def test_an_idle_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 0.5, raising=False)
    with running_server() as (url, _):
        sock = transport.connect(transport.parse_url(url))
        sock.settimeout(10)
        sock.sendall(_frame(Request(1, Op.PING)))
        answers = _read_frames(sock, 1)
        closed = sock.recv(65536)  # blocks until the server closes the idle connection
        sock.close()
    assert answers[0].ok
    assert closed == b""


def test_connections_over_the_bound_get_busy() -> None:
    with running_server(max_connections=2) as (url, _):
        held = [transport.connect(transport.parse_url(url)) for _ in range(2)]
        for sock in held:  # each is being served once it has answered
            sock.sendall(_frame(Request(1, Op.PING)))
            assert _read_frames(sock, 1)[0].ok
        answers = roundtrip(url, _frame(Request(2, Op.PING)))
        for sock in held:
            sock.close()
    assert len(answers) == 1
    assert answers[0].error is not None
    assert answers[0].error.code is ErrorCode.BUSY

"""The relay's pipelined enclave client against a real FrameServer on TCP."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.enclave import server as server_module
from app.parent import enclave_client
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.shared import framing, protocol, transport
from app.shared.protocol import ErrorCode, Op, Request, Response
from tests.enclave.server_helpers import running_server, scripted_handler


def test_many_threads_share_one_connection() -> None:
    with running_server() as (url, _):
        client = EnclaveClient(url)
        with ThreadPoolExecutor(16) as pool:
            echoes = list(
                pool.map(lambda n: client.call(Op.DECRYPT, {"echo": n, "sleep": 0.01})["echo"], range(64))
            )
        client.close()
    assert echoes == list(range(64))


def test_pipelined_submits_resolve_independently() -> None:
    with running_server() as (url, _):
        client = EnclaveClient(url)
        slow = client.submit(Op.DECRYPT, {"echo": "slow", "sleep": 0.3})
        fast = client.submit(Op.DECRYPT, {"echo": "fast"})
        deadline = time.monotonic() + 5
        assert client.wait(*fast, deadline)["echo"] == "fast"
        assert not slow[1].done()
        assert client.wait(*slow, deadline)["echo"] == "slow"
        client.close()


def test_unreachable_enclave_is_a_retryable_error() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    url = transport.bound_url(listener, "tcp")
    listener.close()
    with pytest.raises(EnclaveError) as caught:
        EnclaveClient(url).call(Op.PING)
    assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
    assert caught.value.retryable


def test_enclave_restart_fails_pending_calls_then_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_client, "RECONNECT_BACKOFF_S", (0.0,))
    started = threading.Event()

    def handler(request: Request) -> Response:
        started.set()
        return scripted_handler(request)

    with running_server(handler) as (url, _):
        client = EnclaveClient(url)
        pending = client.submit(Op.DECRYPT, {"sleep": 4, "echo": "lost"})  # outlives the 2 s drain
        # In flight before the server stops: read after it, the request is answered `busy` instead.
        assert started.wait(5)
        port = transport.parse_url(url).port
    with pytest.raises(EnclaveError) as caught:
        client.wait(*pending, time.monotonic() + 5)
    assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
    with running_server(port=port):
        assert client.call(Op.PING)["status"] == "ok"
    client.close()


def test_silent_enclave_times_out_instead_of_hanging() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    client = EnclaveClient(transport.bound_url(listener, "tcp"), request_timeout_s=0.3)
    with pytest.raises(EnclaveError) as caught:
        client.call(Op.PING)
    assert caught.value.code is ErrorCode.ENCLAVE_TIMEOUT  # our bound, not a hang or a dropped link
    for sock in [*accepted, listener]:
        sock.close()


def test_error_answers_keep_their_code() -> None:
    with running_server() as (url, _):
        client = EnclaveClient(url)
        with pytest.raises(EnclaveError) as caught:
            client.call(Op.DECRYPT, {"boom": True})
        client.close()
    assert caught.value.code is ErrorCode.INTERNAL


def test_the_relay_never_notices_the_enclaves_idle_close(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "IDLE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(protocol, "CLIENT_IDLE_RETIRE_S", 0.5)
    with running_server() as (url, _):
        client = EnclaveClient(url)
        assert client.call(Op.PING)["status"] == "ok"
        for pause in (0.7, 1.5):  # past the client's retirement, then past the server's idle close
            time.sleep(pause)
            assert client.call(Op.PING)["status"] == "ok"
        client.close()


def test_a_refused_connection_fails_its_calls_as_busy() -> None:
    with running_server(max_connections=1) as (url, _):
        holder = EnclaveClient(url)
        assert holder.call(Op.PING)["status"] == "ok"
        with pytest.raises(EnclaveError) as caught:
            EnclaveClient(url).call(Op.PING)
        holder.close()
    assert caught.value.code is ErrorCode.BUSY
    assert caught.value.retryable


def test_an_undecodable_answer_fails_the_call_at_once() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))

    def answer_with_nesting() -> None:
        conn = listener.accept()[0]
        conn.recv(65536)
        conn.sendall(framing.encode_frame(b"[" * 131_071 + b"]" * 131_071))
        time.sleep(5)
        conn.close()

    threading.Thread(target=answer_with_nesting, daemon=True).start()
    client = EnclaveClient(transport.bound_url(listener, "tcp"), request_timeout_s=4)
    with pytest.raises(EnclaveError) as caught:
        client.call(Op.PING)
    listener.close()
    assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE  # not a 4 s timeout: the reader survived


def test_a_closed_client_refuses_calls_instead_of_reconnecting() -> None:
    """The pool closes a connection it drops while another thread may still be about to send on it;
    that send must fail over (retryable), not open a connection nobody tracks or ever closes."""
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    listener.settimeout(2.0)
    try:
        client = EnclaveClient(transport.bound_url(listener, "tcp"))
        client.submit(Op.PING, {})
        accepted, _ = listener.accept()
        client.close()
        assert not client.usable
        with pytest.raises(EnclaveError) as caught:
            client.submit(Op.PING, {})
        assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
        assert caught.value.retryable
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # no second connection was opened
        accepted.close()
    finally:
        listener.close()

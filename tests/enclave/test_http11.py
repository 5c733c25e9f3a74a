"""The enclave's HTTP/1.1 reader: bodies by length or chunks, the close signals, and broken answers."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import cast

import pytest

from app.enclave.http11 import Http11Connection, HttpError

REQUEST = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n"


def _answering(*answers: bytes) -> Http11Connection:
    """A connection whose peer reads each request and answers with the next of `answers` (one socketpair)."""
    ours, theirs = socket.socketpair()

    def peer() -> None:
        with theirs:
            for answer in answers:
                theirs.recv(65536)
                theirs.sendall(answer)

    threading.Thread(target=peer, daemon=True).start()
    return Http11Connection(lambda _timeout_s: cast(ssl.SSLSocket, ours))


def test_two_answers_by_content_length_on_one_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: x\r\nContent-Length: 5\r\n\r\nhello"
    connection = _answering(answer, answer.replace(b"200 OK", b"400 Bad"))
    assert connection.exchange(REQUEST, b"{}", 5.0) == (200, b"hello", False)
    assert connection.exchange(REQUEST, b"{}", 5.0) == (400, b"hello", False)


def test_a_chunked_answer_is_joined() -> None:
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    assert _answering(answer).exchange(REQUEST, b"{}", 5.0) == (200, b"abcde", False)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_the_server_closing_is_reported(answer: bytes) -> None:
    assert _answering(answer).exchange(REQUEST, b"{}", 5.0)[2] is True


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed before answering: what a stale kept-alive connection looks like
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_broken_answer_is_an_http_error(answer: bytes) -> None:
    with pytest.raises(HttpError):
        _answering(answer).exchange(REQUEST, b"{}", 5.0)

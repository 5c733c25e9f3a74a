"""The enclave's CONNECT proxy: allowed targets are tunnelled upstream, everything else refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from app.enclave.egress import ConnectProxy, kms_allowlist
from app.shared import transport


@pytest.fixture
def upstream() -> Iterator[str]:
    """An echo server standing in for the parent's vsock-proxy."""
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1024):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield transport.bound_url(listener, "tcp")
    listener.close()


def _connect(proxy: ConnectProxy, head: bytes) -> socket.socket:
    port = int(proxy.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    sock.sendall(head)
    return sock


def test_kms_endpoints_are_tunnelled(upstream: str) -> None:
    proxy = ConnectProxy(upstream, kms_allowlist()).start()
    sock = _connect(proxy, b"CONNECT kms.eu-west-1.amazonaws.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    sock.sendall(b"tls bytes")
    assert sock.recv(1024) == b"TLS BYTES"
    sock.close()
    proxy.close()


@pytest.mark.parametrize(
    "target", [b"example.com:443", b"kms.us-east-1.amazonaws.com:80", b"sqs.us-east-1.amazonaws.com:443"]
)
def test_other_hosts_are_forbidden(upstream: str, target: bytes) -> None:
    proxy = ConnectProxy(upstream, kms_allowlist()).start()
    sock = _connect(proxy, b"CONNECT " + target + b" HTTP/1.1\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 403")
    sock.close()
    proxy.close()


def test_explicit_entries_are_allowed(upstream: str) -> None:
    proxy = ConnectProxy(upstream, kms_allowlist(("localhost:4443",))).start()
    sock = _connect(proxy, b"CONNECT localhost:4443 HTTP/1.1\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 200")
    sock.close()
    proxy.close()


def test_plain_http_requests_are_bad_requests(upstream: str) -> None:
    proxy = ConnectProxy(upstream, kms_allowlist()).start()
    sock = _connect(proxy, b"GET http://kms.us-east-1.amazonaws.com/ HTTP/1.1\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 400")
    sock.close()
    proxy.close()


def test_unreachable_upstream_is_a_bad_gateway() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    dead = transport.bound_url(listener, "tcp")
    listener.close()
    proxy = ConnectProxy(dead, kms_allowlist()).start()
    sock = _connect(proxy, b"CONNECT kms.us-east-1.amazonaws.com:443 HTTP/1.1\r\n\r\n")
    assert sock.recv(1024).startswith(b"HTTP/1.1 502")
    sock.close()
    proxy.close()

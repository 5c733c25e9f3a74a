"""Transport URLs: one string picks TCP or vsock; nothing above knows which."""

from __future__ import annotations

import socket

import pytest

from app.shared import transport
from app.shared.transport import Endpoint, TransportError


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://127.0.0.1:5000", Endpoint("tcp", "127.0.0.1", 5000)),
        ("vsock://16:5000", Endpoint("vsock", "16", 5000)),
        ("vsock://any:5000", Endpoint("vsock", "any", 5000)),
        ("tcp://[::1]:80", Endpoint("tcp", "::1", 80)),
    ],
)
def test_parse(url: str, expected: Endpoint) -> None:
    assert transport.parse_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://x:1", "tcp://nohost", "tcp://:5", "vsock://abc:5000", "tcp://h:99999"]
)
def test_bad_urls_are_refused_with_the_url_in_the_message(url: str) -> None:
    with pytest.raises(TransportError, match=r"tcp://|vsock://|unsupported"):
        transport.parse_url(url)


def test_vsock_address_uses_the_any_cid() -> None:
    assert transport.parse_url("vsock://any:5000").address == (socket.VMADDR_CID_ANY, 5000)
    assert transport.parse_url("vsock://3:8000").address == (3, 8000)


def test_tcp_listen_and_connect() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    url = transport.bound_url(listener, "tcp")
    client = transport.connect(transport.parse_url(url))
    server, _ = listener.accept()
    client.sendall(b"ping")
    assert server.recv(4) == b"ping"
    assert client.gettimeout() == transport.CONNECT_TIMEOUT_S
    for sock in (client, server, listener):
        sock.close()


def test_connect_to_a_closed_port_is_a_transport_error() -> None:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    url = transport.bound_url(listener, "tcp")
    listener.close()
    with pytest.raises(TransportError, match="cannot connect"):
        transport.connect(transport.parse_url(url))

"""vsock over TCP (the rehearsal's deviation): one loopback address per CID, only when the variable is set."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from app.shared import settings, transport, vsock_tcp
from app.shared.transport import TransportError

# Linux routes all of 127.0.0.0/8 to lo; elsewhere (macOS) only 127.0.0.1 exists without an alias.
needs_loopback_net = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="binding 127.0.0.<CID> needs Linux's loopback /8"
)


def test_unset_leaves_vsock_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.ENV_VSOCK_OVER_TCP, raising=False)
    assert transport.parse_url("vsock://16:5000").address == (16, 5000)
    assert not transport.parse_url("vsock://16:5000").over_tcp


def test_connect_goes_to_the_cids_loopback_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "3")
    assert transport.parse_url("vsock://16:5000").address == ("127.0.0.16", 5000)
    assert transport.parse_url("vsock://3:8000").address == ("127.0.0.3", 8000)


def test_listen_any_binds_this_machines_cid_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "16")
    assert transport.parse_url("vsock://any:5000").address == ("127.0.0.16", 5000)
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "3")
    assert transport.parse_url("vsock://any:5005").address == ("127.0.0.3", 5005)


def test_the_demos_ports_do_not_collide() -> None:
    parent = {vsock_tcp.tcp_address(3, port) for port in (5005, 8000, 9000)}
    enclave = {vsock_tcp.tcp_address(16, 5000)}
    assert len(parent | enclave) == 4
    assert not parent & enclave


@pytest.mark.parametrize("cid", ["0", "1", "2", "255", "4096"])
def test_cids_without_an_address_are_refused(monkeypatch: pytest.MonkeyPatch, cid: str) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, cid)
    with pytest.raises(TransportError, match="vsock-over-TCP mapping"):
        transport.listen(transport.parse_url("vsock://any:5000"))


def test_a_non_number_is_refused_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "yes")
    with pytest.raises(TransportError, match=settings.ENV_VSOCK_OVER_TCP):
        transport.connect(transport.parse_url("vsock://16:5000"))


@needs_loopback_net
def test_a_parent_reaches_an_enclave_listener_over_tcp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "16")
    listener = transport.listen(transport.parse_url("vsock://any:0"))
    port = listener.getsockname()[1]
    assert transport.bound_url(listener, "vsock") == f"vsock://16:{port}"
    accepted: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn.recv(5))
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "3")
    client = transport.connect(transport.parse_url(f"vsock://16:{port}"))
    assert client.family == socket.AF_INET
    client.sendall(b"hello")
    thread.join(5)
    client.close()
    listener.close()
    assert accepted == [b"hello"]


@needs_loopback_net
def test_a_wrong_cid_is_not_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.ENV_VSOCK_OVER_TCP, "16")
    listener = transport.listen(transport.parse_url("vsock://any:0"))
    port = listener.getsockname()[1]
    try:
        with pytest.raises(TransportError, match="cannot connect"):
            transport.connect(transport.parse_url(f"vsock://17:{port}"))
    finally:
        listener.close()

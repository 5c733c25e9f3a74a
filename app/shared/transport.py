"""One URL picks the socket: `vsock://16:5000`, `vsock://any:5000` on Nitro, `tcp://127.0.0.1:5000` locally.

Nothing above this module knows which family it is talking over. Every socket it returns has a timeout.
In the first-boot rehearsal only, `NITRO_DEMO_VSOCK_OVER_TCP` carries vsock over TCP (see `vsock_tcp`).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.shared import vsock_tcp

CONNECT_TIMEOUT_S = 5.0
LISTEN_BACKLOG = 128
ACCEPT_POLL_S = 0.5  # how quickly an accept loop notices it should stop
# The parent is CID 3 and enclaves are given CIDs from 4 up; 0-2 are the hypervisor, local and host.
VSOCK_ANY = "any"


class TransportError(Exception):
    """A URL we cannot use, or a peer we cannot reach."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str  # "tcp" or "vsock"
    host: str  # hostname/IP for tcp; decimal CID or "any" for vsock
    port: int

    @property
    def address(self) -> tuple[str, int] | tuple[int, int]:
        if self.scheme == "tcp":
            return (self.host, self.port)
        own_cid = _over_tcp()
        if own_cid is not None:
            return vsock_tcp.tcp_address(own_cid if self.host == VSOCK_ANY else int(self.host), self.port)
        cid = socket.VMADDR_CID_ANY if self.host == VSOCK_ANY else int(self.host)
        return (cid, self.port)

    @property
    def over_tcp(self) -> bool:
        """True for a TCP socket: a tcp:// URL, or vsock carried over TCP in the rehearsal."""
        return self.scheme == "tcp" or _over_tcp() is not None

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_url(url: str) -> Endpoint:
    """`tcp://host:port` or `vsock://cid:port` (cid a number, or `any` to listen)."""
    parts = urlsplit(url)
    if parts.scheme not in ("tcp", "vsock"):
        raise TransportError(f"unsupported transport {url!r}: use tcp://host:port or vsock://cid:port")
    host, _, port_text = parts.netloc.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise TransportError(f"malformed transport URL {url!r}: expected {parts.scheme}://host:port")
    if parts.scheme == "vsock" and host != VSOCK_ANY and not host.isdigit():
        raise TransportError(f"vsock CID must be a number or 'any', got {host!r} in {url!r}")
    return Endpoint(parts.scheme, host.strip("[]"), int(port_text))


def _over_tcp() -> int | None:
    """This machine's CID when the rehearsal carries vsock over TCP, else None."""
    try:
        return vsock_tcp.local_cid()
    except vsock_tcp.VsockOverTcpError as error:
        raise TransportError(str(error)) from error


def _new_socket(endpoint: Endpoint) -> socket.socket:
    if endpoint.scheme == "vsock" and not endpoint.over_tcp:
        if not hasattr(socket, "AF_VSOCK"):
            raise TransportError("this platform has no AF_VSOCK; use a tcp:// URL locally")
        return socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    return socket.socket(family, socket.SOCK_STREAM)


def connect(endpoint: Endpoint, timeout_s: float = CONNECT_TIMEOUT_S) -> socket.socket:
    """A connected stream socket with `timeout_s` set for the connect and every later call."""
    sock = _new_socket(endpoint)
    sock.settimeout(timeout_s)
    try:
        sock.connect(_checked_address(endpoint))
    except OSError as error:
        sock.close()
        raise TransportError(f"cannot connect to {endpoint}: {error.strerror or error}") from error
    if endpoint.over_tcp:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def listen(endpoint: Endpoint, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with `bound_url`)."""
    sock = _new_socket(endpoint)
    if endpoint.over_tcp:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(_checked_address(endpoint))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise TransportError(f"cannot listen on {endpoint}: {error.strerror or error}") from error
    return sock


def _checked_address(endpoint: Endpoint) -> tuple[str, int] | tuple[int, int]:
    try:
        return endpoint.address
    except vsock_tcp.VsockOverTcpError as error:
        raise TransportError(f"cannot use {endpoint}: {error}") from error


def accept_until(
    listener: socket.socket, stopping: threading.Event, serve: Callable[[socket.socket], None]
) -> None:
    """Accept connections until `stopping` is set, each served by `serve` on a thread of its own."""
    listener.settimeout(ACCEPT_POLL_S)
    while not stopping.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            if stopping.is_set():
                return  # the listener was closed to stop us
            raise
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def bound_url(sock: socket.socket, scheme: str) -> str:
    """The URL a peer would use to reach this listening socket."""
    host, port = sock.getsockname()[:2]
    if scheme == "vsock" and sock.family != getattr(socket, "AF_VSOCK", None):
        return f"vsock://{vsock_tcp.cid_of(host)}:{port}"  # vsock over TCP (the rehearsal)
    if scheme == "vsock":
        return f"vsock://{VSOCK_ANY if host == socket.VMADDR_CID_ANY else host}:{port}"
    return f"tcp://{host}:{port}"

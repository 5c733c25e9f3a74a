"""The enclave's only way out: an HTTP CONNECT proxy on 127.0.0.1 that tunnels allowed hosts upstream.

boto3 inside the enclave talks TLS to KMS through this proxy, so the TLS session (and its hostname
check) is end to end between boto3 and KMS; the proxy, like the parent's vsock-proxy behind it, only
ever sees ciphertext. Upstream is `vsock://3:8000` on Nitro (the parent's vsock-proxy, which pins the
real KMS host) and the emulator's TLS port locally. Anything not on the allowlist gets 403.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
from collections.abc import Callable

from app.shared import transport

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT_S = 10.0
TUNNEL_IDLE_TIMEOUT_S = 300.0
PUMP_BYTES = 64 * 1024
# Regional KMS endpoints, FIPS included. The parent's vsock-proxy decides which one really answers.
KMS_HOST_PATTERN = re.compile(r"^kms(-fips)?\.[a-z0-9-]+\.amazonaws\.com:443$")

Allow = Callable[[str], bool]


def kms_allowlist(extra: tuple[str, ...] = ()) -> Allow:
    """Allow regional KMS endpoints plus exact `host:port` entries (the emulator, locally)."""
    allowed = frozenset(extra)
    return lambda target: target in allowed or bool(KMS_HOST_PATTERN.match(target))


class ConnectProxy:
    def __init__(self, upstream_url: str, allow: Allow, *, listen_port: int = 0) -> None:
        self._upstream = transport.parse_url(upstream_url)
        self._allow = allow
        self._listener = transport.listen(transport.Endpoint("tcp", "127.0.0.1", listen_port))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> ConnectProxy:
        threading.Thread(target=self._accept_loop, name="egress-accept", daemon=True).start()
        return self

    def close(self) -> None:
        self._listener.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(HEAD_TIMEOUT_S)
        try:
            target = _read_connect_target(client)
            if target is None:
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            elif not self._allow(target):
                log.warning("egress refused", extra={"fields": {"target": target}})
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            else:
                self._tunnel(client, target)
        except (OSError, transport.TransportError) as error:
            log.warning("egress failed", extra={"fields": {"error": str(error)}})
            with contextlib.suppress(OSError):
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        finally:
            client.close()

    def _tunnel(self, client: socket.socket, target: str) -> None:
        upstream = transport.connect(self._upstream)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for sock in (client, upstream):
            sock.settimeout(TUNNEL_IDLE_TIMEOUT_S)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join(TUNNEL_IDLE_TIMEOUT_S)
        upstream.close()


def _read_connect_target(client: socket.socket) -> str | None:
    """`host:port` from a CONNECT request head, or None if it is not one."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(1024)
        if not chunk or len(head) + len(chunk) > MAX_HEAD_BYTES:
            return None
        head += chunk
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        return None
    return parts[1].lower()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy one direction until EOF, then pass the half-close on."""
    try:
        while data := source.recv(PUMP_BYTES):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)

"""A TLS server standing in for KMS that holds every request until released, then refuses it (throttled).

Lets the worker-pool tests have requests in flight for as long as they need, without timing games.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from pathlib import Path

from app.local.software_nsm import LocalPki
from app.shared import transport

THROTTLED = json.dumps({"__type": "ThrottlingException", "message": "stand-in says slow down"}).encode()


class HeldKms:
    def __init__(self, pki: LocalPki, work_dir: Path) -> None:
        cert_pem, key_pem = pki.tls_certificate_for("localhost")
        (work_dir / "held.crt").write_bytes(cert_pem)
        (work_dir / "held.key").write_bytes(key_pem)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(work_dir / "held.crt", work_dir / "held.key")
        self._listener = transport.listen(transport.Endpoint("tcp", "127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.released = threading.Event()
        self._pending = threading.Condition()
        self.pending = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def wait_pending(self, count: int, timeout_s: float = 30) -> bool:
        with self._pending:
            return self._pending.wait_for(lambda: self.pending >= count, timeout_s)

    def close(self) -> None:
        self.released.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        with contextlib.suppress(OSError), self._context.wrap_socket(raw, server_side=True) as conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                buffered = rest[length:]
                with self._pending:
                    self.pending += 1
                    self._pending.notify_all()
                self.released.wait()
                conn.sendall(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n"
                    + f"Content-Length: {len(THROTTLED)}\r\n\r\n".encode()
                    + THROTTLED
                )

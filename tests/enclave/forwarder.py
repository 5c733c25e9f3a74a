"""A TCP forwarder standing in for the parent's vsock-proxy: counts the connections it holds at once.

vsock-proxy gives each accepted connection a worker until it closes (aws/aws-nitro-enclaves-cli,
vsock_proxy/src/proxy.rs); what matters to us is how many we hold open at the same time.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from app.shared import transport


class Forwarder:
    def __init__(self, upstream_port: int) -> None:
        self._upstream = transport.Endpoint("tcp", "127.0.0.1", upstream_port)
        self._listener = transport.listen(transport.Endpoint("tcp", "127.0.0.1", 0))
        self.url = transport.bound_url(self._listener, "tcp")
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.accepted = 0
        self.most_open = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_all(self) -> None:
        """Close every connection, as a peer that times idle connections out would."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        self.drop_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = transport.connect(self._upstream)
            for sock in (client, upstream):
                sock.settimeout(None)
            with self._lock:
                self.accepted += 1
                self._open.add(client)
                self.most_open = max(self.most_open, len(self._open))
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(client, upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, client: socket.socket | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if client is not None:
            with self._lock:
                self._open.discard(client)

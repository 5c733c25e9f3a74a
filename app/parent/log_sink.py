"""Receives the enclave's log lines (one JSON object per frame) and writes each to stdout as one JSON line.

Under systemd stdout is the journal. Each line keeps the enclave's fields and gains `source: "enclave"`;
a frame that is not a JSON object is counted and skipped; a broken stream ends that connection only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from typing import IO, Any

from app.shared import framing, transport

log = logging.getLogger(__name__)

SOURCE = "enclave"
MAX_LINE_FRAME_BYTES = 64 * 1024
POLL_INTERVAL_S = 0.5
RECV_BYTES = 64 * 1024


class LogSink:
    """Accepts enclave connections until `stop()`; thread-safe writes, one line per frame."""

    def __init__(self, listener: socket.socket, out: IO[str]) -> None:
        self._listener = listener
        self._out = out
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self.lines = 0
        self.rejected = 0

    def serve_forever(self) -> None:
        transport.accept_until(self._listener, self._stopping, self._serve_connection)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _serve_connection(self, conn: socket.socket) -> None:
        decoder = framing.FrameDecoder(MAX_LINE_FRAME_BYTES)
        conn.settimeout(POLL_INTERVAL_S)
        log.info("enclave log channel connected")
        try:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(RECV_BYTES)
                except TimeoutError:
                    continue
                if not data:
                    break
                for frame in decoder.feed(data):
                    self._write(frame)
        except framing.FramingError as error:
            log.warning("enclave log channel: bad framing, closing", extra={"fields": {"error": str(error)}})
        except OSError as error:
            log.info("enclave log channel dropped", extra={"fields": {"error": type(error).__name__}})
        finally:
            conn.close()

    def _write(self, frame: bytes) -> None:
        entry = parse_line(frame)
        with self._write_lock:
            if entry is None:
                self.rejected += 1
                return
            self._out.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self._out.flush()
            self.lines += 1


def parse_line(frame: bytes) -> dict[str, Any] | None:
    """The enclave's JSON object plus `source`; None for anything else."""
    try:
        entry = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    return {**entry, "source": SOURCE}


def open_sink(listen_url: str, out: IO[str]) -> tuple[LogSink, str]:
    """A sink listening on `listen_url` and the URL it is reachable at (port 0 picks one)."""
    endpoint = transport.parse_url(listen_url)
    listener = transport.listen(endpoint)
    return LogSink(listener, out), transport.bound_url(listener, endpoint.scheme)

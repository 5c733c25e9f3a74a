"""HTTP/1.1 on one TLS socket the enclave opens itself over the egress link: a request out, an answer in.

Only what KMS's JSON answers need: a status line, headers, a body by Content-Length or chunked, and
whether the server will close. http.client did the same with a header parser (the email package) and a
new reader per answer that cost more CPU than the signing; this keeps one buffered reader per connection.
Limits on line length, header count and body size keep a broken peer from holding us.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import Callable

MAX_LINE_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 1024 * 1024


class HttpError(OSError):
    """The peer's answer is not the HTTP/1.1 we can read (or it closed before answering)."""


class Http11Connection:
    """Not thread-safe: the client's pool hands a connection to one caller at a time."""

    def __init__(self, opener: Callable[[float], ssl.SSLSocket]) -> None:
        self._opener = opener
        self.sock: ssl.SSLSocket | None = None
        self._buffer: io.BufferedReader | None = None
        self.used = False

    def close(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
        if self.sock is not None:
            self.sock.close()
        self.sock, self._buffer, self.used = None, None, False

    def exchange(self, head: bytes, body: bytes, timeout_s: float) -> tuple[int, bytes, bool]:
        """(status, body, server will close) for one request; opens the connection if needed. Every socket
        operation (connect, handshake, send, each read) waits at most `timeout_s`, the caller's time left."""
        if self.sock is None:
            self.sock = self._opener(timeout_s)
            self._buffer = self.sock.makefile("rb")
        self.sock.settimeout(timeout_s)
        self.sock.sendall(head + body)
        reader = self._buffer
        if reader is None:  # opened together with the socket; never None here
            raise HttpError("connection not open")
        status_line = reader.readline(MAX_LINE_BYTES)
        if not status_line:
            raise HttpError("the server closed the connection before answering")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
        length, chunked, close = self._headers(reader)
        close = close or parts[0] == b"HTTP/1.0"
        if chunked:
            data = self._chunked(reader)
        elif length is not None:
            data = self._exactly(reader, length)
        else:
            data, close = self._exactly(reader, MAX_BODY_BYTES, to_eof=True), True
        self.used = True
        return int(parts[1]), data, close

    @staticmethod
    def _headers(reader: io.BufferedReader) -> tuple[int | None, bool, bool]:
        length, chunked, close = None, False, False
        for _ in range(MAX_HEADERS):
            line = reader.readline(MAX_LINE_BYTES)
            if line in (b"\r\n", b"\n"):
                return length, chunked, close
            if not line:
                raise HttpError("the server closed the connection inside the headers")
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                if not value.isdigit():
                    raise HttpError(f"Content-Length {value[:20]!r} is not a number")
                length = int(value)
                if not 0 <= length <= MAX_BODY_BYTES:
                    raise HttpError(f"Content-Length {length} out of bounds")
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        raise HttpError(f"more than {MAX_HEADERS} header lines")

    @staticmethod
    def _exactly(reader: io.BufferedReader, count: int, *, to_eof: bool = False) -> bytes:
        data = reader.read(count)
        if len(data) != count and not to_eof:
            raise HttpError(f"the body ended after {len(data)} of {count} bytes")
        return bytes(data)

    @classmethod
    def _chunked(cls, reader: io.BufferedReader) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = reader.readline(MAX_LINE_BYTES)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError as error:
                raise HttpError(f"bad chunk size line {size_line[:20]!r}") from error
            if size == 0:
                cls._headers(reader)  # trailers, then the blank line
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise HttpError("chunked body too large")
            chunks.append(cls._exactly(reader, size))
            cls._exactly(reader, 2)  # CRLF after each chunk

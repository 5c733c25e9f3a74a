"""Serves framed requests on a listening socket: many connections, many requests in flight on each.

It owns connections, framing and concurrency, and nothing about what a request means (that is the
handler's job). The server sets the pace, never the peer: a message that cannot be decoded, for any
reason, gets an error answer and the connection keeps serving; a frame over the limit, or one not
complete within `PARTIAL_FRAME_TIMEOUT_S` of its first byte, ends that connection only; a connection
with nothing in flight for `protocol.SERVER_IDLE_TIMEOUT_S` is closed; at most `MAX_CONNECTIONS` are
served at once and the excess get a `busy` error frame. `stop()` stops accepting, lets requests in
flight finish within a bound, then closes every connection.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from app.shared import deployment, framing, protocol, transport
from app.shared.protocol import ErrorCode, Request, Response

log = logging.getLogger(__name__)

Handler = Callable[[Request], Response]

WORKERS = deployment.KMS_CONNECTIONS  # each worker holds at most one KMS connection
MAX_IN_FLIGHT_PER_CONNECTION = 256
# A frame must be complete this long after its first byte arrived, however the bytes are spread out.
PARTIAL_FRAME_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = protocol.SERVER_IDLE_TIMEOUT_S
# The relay holds one connection; ping/attest/status add short-lived ones. Each costs a reader thread.
MAX_CONNECTIONS = 64
DRAIN_GRACE_S = 30.0  # upper bound only; stop() closes connections once its own drain bound passes
POLL_INTERVAL_S = 0.5
REFUSE_LINGER_S = 0.5
REFUSE_LINGER_READS = 4
RECV_BYTES = 64 * 1024


class FrameServer:
    def __init__(
        self,
        listener: socket.socket,
        handler: Handler,
        *,
        workers: int = WORKERS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._listener = listener
        self._max_connections = max_connections
        self._handler = handler
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="enclave-worker")
        self._stopping = threading.Event()
        self._in_flight = 0
        self._idle = threading.Condition()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def serve_forever(self) -> None:
        """Accept until `stop()`; each connection gets a reader thread."""
        transport.accept_until(self._listener, self._stopping, self._serve_connection)

    def stop(self, drain_timeout_s: float) -> bool:
        """Stop accepting, wait for in-flight requests (bounded), close everything. True if drained."""
        self._stopping.set()
        self._listener.close()
        deadline = time.monotonic() + drain_timeout_s
        with self._idle:
            drained = self._idle.wait_for(lambda: self._in_flight == 0, max(deadline - time.monotonic(), 0))
        with self._connections_lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._pool.shutdown(wait=drained, cancel_futures=True)
        return drained

    def _serve_connection(self, conn: socket.socket) -> None:
        writer = _FrameWriter(conn)
        if not self._admit(conn):
            log.warning("refusing connection: too many", extra={"fields": {"limit": self._max_connections}})
            writer.send(protocol.error_response(0, ErrorCode.BUSY, "too many connections"))
            _close_gently(conn)
            return
        try:
            self._read_requests(conn, writer)
            writer.wait_idle(DRAIN_GRACE_S)  # stopping: answers still being computed go out first
        except framing.FramingError as error:
            log.warning("closing connection: bad framing", extra={"fields": {"error": str(error)}})
            writer.send(protocol.error_response(0, ErrorCode.BAD_REQUEST, str(error)))
        except OSError as error:
            log.info("connection dropped", extra={"fields": {"error": type(error).__name__}})
        except Exception as error:  # the boundary: one connection's bug must not reach the server
            log.error("connection failed", extra={"fields": {"error": type(error).__name__}})
            writer.send(protocol.error_response(0, ErrorCode.INTERNAL, type(error).__name__))
        finally:
            with self._connections_lock:
                self._connections.discard(conn)
            conn.close()

    def _admit(self, conn: socket.socket) -> bool:
        with self._connections_lock:
            if len(self._connections) >= self._max_connections:
                return False
            self._connections.add(conn)
            return True

    def _read_requests(self, conn: socket.socket, writer: _FrameWriter) -> None:
        decoder = framing.FrameDecoder()
        conn.settimeout(POLL_INTERVAL_S)
        pace = _Pace()
        while not self._stopping.is_set():
            try:
                data = conn.recv(RECV_BYTES)
            except TimeoutError:
                data = None
            if data == b"":
                decoder.close()
                return
            if data:
                for frame in decoder.feed(data):
                    self._dispatch(frame, writer)
            pace.observe(decoder.in_frame, writer.busy, got_data=bool(data))
            if pace.frame_overdue():
                raise framing.FramingError(
                    f"frame left incomplete {PARTIAL_FRAME_TIMEOUT_S:g} s after its first byte "
                    f"({decoder.pending_bytes} bytes buffered)"
                )
            if pace.idle_too_long():
                log.info("closing idle connection", extra={"fields": {"idle_s": IDLE_TIMEOUT_S}})
                return

    def _dispatch(self, frame: bytes, writer: _FrameWriter) -> None:
        try:
            request = protocol.decode_request(frame)
        except protocol.ProtocolError as error:
            writer.send(protocol.error_response(error.request_id, error.code, str(error)))
            return
        except Exception as error:  # any decoding failure is the peer's problem, answered, not fatal
            log.warning("undecodable request", extra={"fields": {"error": type(error).__name__}})
            writer.send(
                protocol.error_response(0, ErrorCode.BAD_REQUEST, f"undecodable: {type(error).__name__}")
            )
            return
        if self._stopping.is_set():
            writer.send(protocol.error_response(request.id, ErrorCode.BUSY, "server is stopping"))
            return
        if not writer.begin():
            writer.send(protocol.error_response(request.id, ErrorCode.BUSY, "too many requests in flight"))
            return
        with self._idle:
            self._in_flight += 1
        try:
            self._pool.submit(self._answer, request, writer)
        except RuntimeError:  # the pool shut down between the check above and now
            self._finish(writer)
            writer.send(protocol.error_response(request.id, ErrorCode.BUSY, "server is stopping"))

    def _answer(self, request: Request, writer: _FrameWriter) -> None:
        try:
            response = self._handler(request)
        except Exception as error:  # the boundary: one bad request must not take the server down
            log.exception("handler failed", extra={"fields": {"op": request.op, "id": request.id}})
            response = protocol.error_response(request.id, ErrorCode.INTERNAL, type(error).__name__)
        # Count the request as done only once its answer is on the wire, so a drain waits for it.
        writer.send(response)
        self._finish(writer)

    def _finish(self, writer: _FrameWriter) -> None:
        writer.end()
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()


def _close_gently(conn: socket.socket) -> None:
    """Close after what we sent has left: unread input at close() would reset the connection and
    could destroy our last frame before the peer reads it. Bounded in time and bytes."""
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(REFUSE_LINGER_S)
        for _ in range(REFUSE_LINGER_READS):
            if not conn.recv(RECV_BYTES):
                break
    conn.close()


class _Pace:
    """When a connection's peer has had too long: a frame started but unfinished, or nothing in flight.

    Times are taken from the first byte of a frame (not from the last read, so a drip feed does not
    extend them) and from the moment the connection last became idle.
    """

    def __init__(self) -> None:
        now = time.monotonic()
        self._frame_started: float | None = None
        self._idle_since: float | None = now

    def observe(self, in_frame: bool, busy: bool, *, got_data: bool) -> None:
        now = time.monotonic()
        if not in_frame:
            self._frame_started = None
        elif self._frame_started is None:
            self._frame_started = now
        if busy or in_frame or got_data:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now

    def frame_overdue(self) -> bool:
        started = self._frame_started
        return started is not None and time.monotonic() - started > PARTIAL_FRAME_TIMEOUT_S

    def idle_too_long(self) -> bool:
        since = self._idle_since
        return since is not None and time.monotonic() - since > IDLE_TIMEOUT_S


class _FrameWriter:
    """Serialises answers from many worker threads onto one socket."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._count_lock = threading.Condition()
        self._in_flight = 0

    def begin(self) -> bool:
        """Reserve a slot for one more request on this connection; False when it is full."""
        with self._count_lock:
            if self._in_flight >= MAX_IN_FLIGHT_PER_CONNECTION:
                return False
            self._in_flight += 1
            return True

    def end(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
            self._count_lock.notify_all()

    @property
    def busy(self) -> bool:
        """Requests on this connection still being computed or answered."""
        with self._count_lock:
            return self._in_flight > 0

    def wait_idle(self, timeout_s: float) -> None:
        with self._count_lock:
            self._count_lock.wait_for(lambda: self._in_flight == 0, timeout_s)

    def send(self, response: Response) -> None:
        payload = framing.encode_frame(protocol.encode_response(response))
        with self._lock:
            try:
                self._conn.sendall(payload)
            except OSError as error:
                log.info(
                    "answer not delivered: peer gone",
                    extra={"fields": {"id": response.id, "error": str(error)}},
                )

"""The parent's side of the vsock link: many requests in flight on one long-lived connection.

Thread-safe. Each call gets a future resolved by a reader thread when the answer with its id arrives,
so answers may come back in any order. A dead connection fails every pending call with a retryable
`enclave_unavailable` error, and the next call reconnects (with back-off), so an enclave restart costs
a retry, never a lost request. Every wait is bounded. A connection idle for `CLIENT_IDLE_RETIRE_S` is
retired before the next call, so the enclave's idle close (after twice that) never meets a request.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from app.shared import framing, protocol, transport
from app.shared.protocol import ErrorCode, Op, Request, Response

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0
RECONNECT_BACKOFF_S = (0.05, 0.2, 0.5, 1.0, 2.0)
RECV_BYTES = 64 * 1024
# A send blocks (holding the connection's lock) only while the peer's receive buffer is full; a peer that
# stops reading altogether would hold every sender and `close` forever. SO_SNDTIMEO bounds each send
# (socket(7); AF_VSOCK honours it too, linux net/vmw_vsock/af_vsock.c uses sock_sndtimeo) without
# touching the reader's blocking recv; a send that times out kills the connection (retryable).
SEND_TIMEOUT_S = 5.0


class EnclaveError(Exception):
    """A call that did not get a successful answer; `code` says why, `retryable` whether to try again."""

    def __init__(self, code: ErrorCode, message: str, proof: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.reason = message
        self.proof = proof  # the enclave's signed refusal, when the enclave itself refused

    @property
    def retryable(self) -> bool:
        return self.code in protocol.RETRYABLE


class _Connection:
    """One socket, its pending calls and the thread that reads answers for them."""

    def __init__(self, sock: socket.socket, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        self.sock = sock
        self.pending: dict[int, Future[Response]] = {}
        self.lock = threading.Lock()
        self.alive = True
        self.closed_with = (ErrorCode.ENCLAVE_UNAVAILABLE, "connection closed")
        self.last_activity = time.monotonic()
        sock.settimeout(None)  # the reader blocks; callers bound their own waits
        seconds, fraction = divmod(send_timeout_s, 1.0)
        timeval = struct.pack("ll", int(seconds), int(fraction * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        self.reader = threading.Thread(target=self._read_loop, name="enclave-reader", daemon=True)
        self.reader.start()

    def send(self, payloads: Sequence[tuple[int, bytes]]) -> list[Future[Response]]:
        """Frame every (request id, payload) and write them all with one send: one system call and one
        turn of the lock for a whole batch. Frames are built first, so a refused one registers nothing."""
        data = b"".join(framing.encode_frame(payload) for _, payload in payloads)
        futures: list[Future[Response]] = [Future() for _ in payloads]
        failed: list[Future[Response]] = []
        send_error: OSError | None = None
        with self.lock:
            if not self.alive:
                raise EnclaveError(*self.closed_with)
            self.pending.update((request_id, f) for (request_id, _), f in zip(payloads, futures, strict=True))
            self.last_activity = time.monotonic()
            try:
                self.sock.sendall(data)
            except OSError as error:
                for request_id, _ in payloads:
                    self.pending.pop(request_id, None)
                failed = self._shut(f"send failed: {error}")
                send_error = error
        if send_error is not None:
            self._fail(failed)
            raise EnclaveError(ErrorCode.ENCLAVE_UNAVAILABLE, f"send failed: {send_error}") from send_error
        return futures

    def close(self, reason: str) -> None:
        with self.lock:
            failed = self._shut(reason)
        self._fail(failed)

    def idle_for(self, seconds: float) -> bool:
        """Nothing pending and nothing sent or received for `seconds`."""
        with self.lock:
            return not self.pending and time.monotonic() - self.last_activity > seconds

    def _read_loop(self) -> None:
        decoder = framing.FrameDecoder()
        reason = "enclave closed the connection"
        try:
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    decoder.close()
                    break
                for frame in decoder.feed(data):
                    self._deliver(protocol.decode_response(frame))
        except (OSError, framing.FramingError, protocol.ProtocolError) as error:
            reason = f"connection lost: {error}"
        except Exception as error:  # an answer we cannot even decode must not strand pending calls
            reason = f"connection lost: undecodable answer ({type(error).__name__})"
        with self.lock:
            failed = self._shut(reason)
        self._fail(failed)

    def _deliver(self, response: Response) -> None:
        with self.lock:
            self.last_activity = time.monotonic()
            future = self.pending.pop(response.id, None)
        if future is not None and not future.done():
            future.set_result(response)
        elif response.id == 0 and response.error is not None:
            log.warning(
                "enclave reported a connection error", extra={"fields": {"code": response.error.code}}
            )
            if response.error.code is ErrorCode.BUSY:  # too many connections: the enclave closes this one
                with self.lock:
                    failed = self._shut(response.error.message, ErrorCode.BUSY)
                self._fail(failed)

    def _shut(self, reason: str, code: ErrorCode = ErrorCode.ENCLAVE_UNAVAILABLE) -> list[Future[Response]]:
        """Called with the lock held: closes the socket, keeps the first reason to close, and hands back the
        calls still pending, for `_fail` to fail once the lock is released."""
        if not self.alive:
            return []
        self.alive = False
        self.closed_with = (code, reason)
        pending, self.pending = self.pending, {}
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        return list(pending.values())

    def _fail(self, futures: Sequence[Future[Response]]) -> None:
        """Fails `futures` with the reason the connection closed. Never with the lock held: a future's
        done-callbacks run right here (the relay's pool takes its own lock in them), and a callback that
        waits for a lock while this one is held closes a cycle (pool -> client -> connection -> pool)."""
        code, reason = self.closed_with
        for future in futures:
            if not future.done():
                future.set_exception(EnclaveError(code, reason))


class EnclaveClient:
    """`call(op, body)` from any thread; one connection shared by all of them."""

    def __init__(
        self,
        url: str,
        *,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self._endpoint = transport.parse_url(url)
        self._timeout_s = request_timeout_s
        self._send_timeout_s = send_timeout_s
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._connection: _Connection | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._closed = False  # by `close`: for good, so a caller still holding it cannot reconnect it

    def _connected(self) -> _Connection:
        with self._lock:
            if self._closed:
                # e.g. the pool dropped this connection while another thread was about to send on it:
                # reconnecting would open a connection nobody tracks or ever closes.
                raise EnclaveError(ErrorCode.ENCLAVE_UNAVAILABLE, f"connection to {self._endpoint} closed")
            connection = self._connection
            if connection is not None and connection.alive:
                if not connection.idle_for(protocol.CLIENT_IDLE_RETIRE_S):
                    return connection
                connection.close("retired after being idle")  # before the enclave's idle close
            if time.monotonic() < self._next_attempt:
                raise EnclaveError(ErrorCode.ENCLAVE_UNAVAILABLE, f"{self._endpoint} down, backing off")
            try:
                self._connection = _Connection(transport.connect(self._endpoint), self._send_timeout_s)
            except transport.TransportError as error:
                delay = RECONNECT_BACKOFF_S[min(self._failures, len(RECONNECT_BACKOFF_S) - 1)]
                self._failures += 1
                self._next_attempt = time.monotonic() + delay
                raise EnclaveError(ErrorCode.ENCLAVE_UNAVAILABLE, str(error)) from error
            if self._failures:
                log.info("reconnected to the enclave", extra={"fields": {"after_failures": self._failures}})
            self._failures = 0
            return self._connection

    def submit(self, op: Op, body: Mapping[str, Any]) -> tuple[int, Future[Response]]:
        """Send without waiting; pair with `wait`. Raises EnclaveError if the enclave is unreachable."""
        return self.submit_all(op, [body])[0]

    def submit_all(self, op: Op, bodies: Sequence[Mapping[str, Any]]) -> list[tuple[int, Future[Response]]]:
        """`submit` for several requests, written to the connection at once. Raises EnclaveError (for
        all of them) if the enclave is unreachable."""
        connection = self._connected()
        payloads = []
        for body in bodies:
            request_id = next(self._ids)
            payloads.append((request_id, protocol.encode_request(Request(request_id, op, body))))
        futures = connection.send(payloads)
        return [(request_id, future) for (request_id, _), future in zip(payloads, futures, strict=True)]

    def submit_each(
        self, op: Op, bodies: Sequence[Mapping[str, Any]]
    ) -> list[tuple[int, Future[Response]] | EnclaveError]:
        """`submit_all` with the failure per request, as `EnclavePool.submit_each` gives it."""
        try:
            return list(self.submit_all(op, bodies))
        except EnclaveError as error:
            return [error] * len(bodies)

    def wait(self, request_id: int, future: Future[Response], deadline: float) -> Mapping[str, Any]:
        """The answer's body, or EnclaveError (timeouts included) — never a hang past `deadline`."""
        try:
            response = future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout as error:
            # A peer that stays silent this long is wedged (a half-open vsock after an enclave crash
            # looks just like this): drop the connection so the next call reconnects.
            self._drop_connection("request timed out")
            raise EnclaveError(
                ErrorCode.ENCLAVE_TIMEOUT, f"no answer within {self._timeout_s:.0f} s"
            ) from error
        if response.error is not None:
            raise EnclaveError(response.error.code, response.error.message, response.error.proof)
        return response.body or {}

    def call(self, op: Op, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        request_id, future = self.submit(op, body or {})
        return self.wait(request_id, future, time.monotonic() + self._timeout_s)

    @property
    def request_timeout_s(self) -> float:
        return self._timeout_s

    @property
    def usable(self) -> bool:
        """Connected, or free to try connecting now (not backing off after a failed connect)."""
        with self._lock:
            connection = self._connection
            if connection is not None and connection.alive:
                return True
            return not self._closed and time.monotonic() >= self._next_attempt

    def _drop_connection(self, reason: str) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close(reason)

    def close(self) -> None:
        """Close the connection and refuse every later call (retryable `enclave_unavailable`)."""
        with self._lock:
            self._closed = True
        self._drop_connection("client closed")

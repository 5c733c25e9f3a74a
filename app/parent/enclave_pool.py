"""The relay's link to every enclave worker process: one connection each, within a bounded window.

The enclave runs one worker process per vCPU behind one listener, and the kernel, not we, picks the
worker that accepts each connection. So the pool asks every connection who answered (a ping carries
`worker` and `workers`), keeps one connection per worker, opens more until each worker has one (a
bounded number of tries, again every `PROBE_INTERVAL_S`, since a reconnect may land anywhere), and sends
each request on the connection with the fewest in flight. At most `window` requests are in flight over
all of them (default `deployment.KMS_CONNECTIONS`, what the enclave's workers can work on at once); a
caller beyond it waits for a slot, within the request timeout, so a slow enclave is never buried.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from app.parent.enclave_client import REQUEST_TIMEOUT_S, EnclaveClient, EnclaveError
from app.shared import deployment
from app.shared.protocol import ErrorCode, Op, Response

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 10.0
RETRY_PROBE_S = 1.0  # while some worker has no connection yet
TRIES_PER_WORKER = 8  # connections tried per missing worker before waiting for the next probe


class EnclavePool:
    """Same calls as EnclaveClient (`submit`, `wait`, `call`, `close`), over one connection per worker."""

    def __init__(
        self, url: str, *, window: int = deployment.KMS_CONNECTIONS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self._url = url
        self._timeout_s = request_timeout_s
        self._window = threading.BoundedSemaphore(window)
        self._lock = threading.Lock()
        self._clients: list[EnclaveClient] = []
        self._worker_of: dict[int, int] = {}  # id(client) -> the worker it reached at the last probe
        self._in_flight: dict[int, int] = {}  # id(client) -> requests in flight on it
        self._owners: dict[int, tuple[EnclaveClient, int]] = {}  # pool request id -> client, its id
        self._ids = itertools.count(1)
        self._next_probe = 0.0

    @property
    def request_timeout_s(self) -> float:
        return self._timeout_s

    @property
    def workers(self) -> list[int]:
        """The enclave workers the pool holds a connection to, as of the last probe."""
        with self._lock:
            return sorted(set(self._worker_of.values()))

    def submit(self, op: Op, body: Mapping[str, Any]) -> tuple[int, Future[Response]]:
        if not self._window.acquire(timeout=self._timeout_s):
            raise EnclaveError(
                ErrorCode.BUSY, f"window of requests in flight still full after {self._timeout_s:g} s"
            )
        try:
            client = self._pick()
            inner_id, future = client.submit(op, body)
        except BaseException:
            self._window.release()
            raise
        pool_id = next(self._ids)
        with self._lock:
            self._owners[pool_id] = (client, inner_id)
            self._in_flight[id(client)] = self._in_flight.get(id(client), 0) + 1
        future.add_done_callback(lambda _f: self._done(client))
        return pool_id, future

    def wait(self, request_id: int, future: Future[Response], deadline: float) -> Mapping[str, Any]:
        with self._lock:
            client, inner_id = self._owners.pop(request_id)
        return client.wait(inner_id, future, deadline)

    def call(self, op: Op, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        request_id, future = self.submit(op, body or {})
        return self.wait(request_id, future, time.monotonic() + self._timeout_s)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def _done(self, client: EnclaveClient) -> None:
        with self._lock:
            self._in_flight[id(client)] = max(self._in_flight.get(id(client), 1) - 1, 0)
        self._window.release()

    def _pick(self) -> EnclaveClient:
        if time.monotonic() >= self._next_probe:
            self._probe()
        with self._lock:
            if not self._clients:
                raise EnclaveError(
                    ErrorCode.ENCLAVE_UNAVAILABLE, f"no connection to the enclave at {self._url}"
                )
            return min(self._clients, key=lambda c: self._in_flight.get(id(c), 0))

    def _probe(self) -> None:
        """Re-learn which worker each connection reaches; open connections until each worker has one."""
        with self._lock:
            if time.monotonic() < self._next_probe:
                return  # another thread is at it, or just was
            self._next_probe = time.monotonic() + PROBE_INTERVAL_S
            known = list(self._clients)
        reached: dict[int, int] = {}
        count = 1
        for client in known:  # kept even when two reach one worker: they may carry requests
            worker, workers = self._identify(client)
            if worker is not None:
                reached[id(client)], count = worker, max(count, workers)
        tries = 0
        while len(set(reached.values())) < count and tries < TRIES_PER_WORKER * count:
            tries += 1
            client = EnclaveClient(self._url, request_timeout_s=self._timeout_s)
            worker, workers = self._identify(client)
            if worker is None or worker in reached.values():
                client.close()
                continue
            count = max(count, workers)
            reached[id(client)] = worker
            with self._lock:
                self._clients.append(client)
        with self._lock:
            self._worker_of = {id(c): reached[id(c)] for c in self._clients if id(c) in reached}
            if len(set(reached.values())) < count:  # e.g. a worker still starting: look again soon
                self._next_probe = time.monotonic() + RETRY_PROBE_S
        if len(set(reached.values())) < count:
            log.warning(
                "not every enclave worker reached",
                extra={"fields": {"reached": len(set(reached.values())), "workers": count}},
            )

    @staticmethod
    def _identify(client: EnclaveClient) -> tuple[int | None, int]:
        """(worker index, worker count) from a ping; (None, 0) if it does not answer."""
        try:
            answer = client.call(Op.PING)
        except EnclaveError:
            return None, 0
        return int(answer.get("worker", 0)), int(answer.get("workers", 1))

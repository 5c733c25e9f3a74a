"""The relay's link to every enclave worker process: one connection each, within a bounded window.

The enclave runs one worker process per vCPU behind one listener, and the kernel, not we, picks the
worker that accepts each connection. So the pool asks every connection who answered (a ping carries
`worker` and `workers`), keeps one connection per worker, opens more until each worker has one (a
bounded number of tries, again every `PROBE_INTERVAL_S`, since a reconnect may land anywhere), and sends
each request on the usable connection with the fewest in flight. At most `window` requests are in flight
over all of them (default `deployment.KMS_CONNECTIONS`, what the enclave's workers can work on at once); a
caller beyond it waits for a slot, within the request timeout, so a slow enclave is never buried.

The probe runs on whichever caller finds it due, so it is bounded in total (`PROBE_BUDGET_S`), each ping
too (`PING_TIMEOUT_S`); a ping that is merely slow keeps its connection (requests may be in flight on it),
one that fails drops it, and so does a second connection to a worker that carries nothing: after worker
restarts the pool holds what it uses, not every connection it ever opened. Requests count as in flight from
before they are written, so a batch on its way never looks like nothing. A caller that finds no usable
connection while another's probe runs (a relay's pollers start together, one runs the first probe) waits
for that probe instead of failing its requests as `enclave_unavailable`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from app.parent.enclave_client import REQUEST_TIMEOUT_S, EnclaveClient, EnclaveError
from app.parent.window import Window
from app.shared import deployment
from app.shared.protocol import ErrorCode, Op, Response

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 10.0
RETRY_PROBE_S = 1.0  # while some worker has no connection yet
TRIES_PER_WORKER = 8  # connections tried per missing worker before waiting for the next probe
PING_TIMEOUT_S = 1.0  # one probe ping; a worker busy with cards answers a ping in milliseconds
PROBE_BUDGET_S = 3.0  # a whole probe, pings and new connections together


class _Answer:
    """What a probe ping found: the worker reached, or that the connection failed, or no answer in time."""

    def __init__(self, worker: int | None = None, workers: int = 1, *, failed: bool = False) -> None:
        self.worker, self.workers, self.failed = worker, workers, failed


class EnclavePool:
    """Same calls as EnclaveClient (`submit`, `wait`, `call`, `close`), over one connection per worker."""

    def __init__(
        self, url: str, *, window: int = deployment.KMS_CONNECTIONS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self._url = url
        self._timeout_s = request_timeout_s
        self._window = Window(window)
        self._lock = threading.Lock()
        self._clients: list[EnclaveClient] = []
        self._worker_of: dict[EnclaveClient, int] = {}  # the worker each reached at the last probe
        self._in_flight: dict[EnclaveClient, int] = {}  # requests in flight on each client we hold
        self._owners: dict[int, tuple[EnclaveClient, int]] = {}  # pool request id -> client, its id
        self._ids = itertools.count(1)
        self._next_probe = 0.0
        self._probing = False  # a probe is under way on some caller's thread
        self._probe_ended = threading.Condition(self._lock)

    @property
    def request_timeout_s(self) -> float:
        return self._timeout_s

    @property
    def workers(self) -> list[int]:
        """The enclave workers the pool holds a connection to, as of the last probe."""
        with self._lock:
            return sorted(set(self._worker_of.values()))

    @property
    def connections(self) -> int:
        """How many connections (clients) the pool holds now."""
        with self._lock:
            return len(self._clients)

    def submit(self, op: Op, body: Mapping[str, Any]) -> tuple[int, Future[Response]]:
        if not self._acquire(1):
            raise self._busy()
        try:
            client, inner_id, future = self._send(op, body)
        except BaseException:
            self._window.release()
            raise
        return self._track(client, inner_id, future)

    def submit_each(
        self, op: Op, bodies: Sequence[Mapping[str, Any]]
    ) -> list[tuple[int, Future[Response]] | EnclaveError]:
        """`submit` for a batch, one outcome per body: the window's slots are waited for once (within the
        request timeout), the bodies spread over the usable connections by fewest in flight, and each
        connection's share written at once. A body without a slot gets `busy`; a share whose connection
        cannot send is passed on one by one, as `submit` does."""
        slots = self._acquire(len(bodies))
        placed: dict[int, tuple[int, Future[Response]] | EnclaveError] = {}
        try:
            for client, share in self._share(slots).items():
                for index, outcome in self._send_share(client, op, [(i, bodies[i]) for i in share]):
                    placed[index] = outcome
        finally:  # the slots of bodies that are not in flight after all (failed, or not reached by a bug)
            in_flight = sum(1 for outcome in placed.values() if not isinstance(outcome, EnclaveError))
            if slots > in_flight:
                self._window.release(slots - in_flight)
        outcomes = [placed[i] for i in range(slots)]
        return outcomes + [self._busy()] * (len(bodies) - slots)

    def _acquire(self, count: int) -> int:
        """Up to `count` window slots, taken together within one request timeout; how many were taken.
        Once per call (a batch is one): a relay's pollers start together, one runs the first probe."""
        self._await_probe()
        return self._window.acquire(count, self._timeout_s)

    def _busy(self) -> EnclaveError:
        """What a request gets when no window slot came free within the request timeout."""
        return EnclaveError(
            ErrorCode.BUSY, f"window of requests in flight still full after {self._timeout_s:g} s"
        )

    def _share(self, count: int) -> dict[EnclaveClient | None, list[int]]:
        """Indices 0..count-1 spread over the usable connections, each to the one with the fewest in flight
        counting what this batch already gave it; None holds them when there is no usable connection."""
        load = {client: in_flight for client, usable, in_flight in self._standing() if usable}
        shares: dict[EnclaveClient | None, list[int]] = {}
        for index in range(count):
            client = min(load, key=load.__getitem__) if load else None
            if client is not None:
                load[client] += 1
            shares.setdefault(client, []).append(index)
        return shares

    def _send_share(
        self, client: EnclaveClient | None, op: Op, share: list[tuple[int, Mapping[str, Any]]]
    ) -> Iterator[tuple[int, tuple[int, Future[Response]] | EnclaveError]]:
        """Each body's outcome, yielded as soon as it is tracked (the caller counts the slots in use)."""
        pairs: list[tuple[int, Future[Response]]] = []
        if client is not None:
            self._count(client, len(share))
            try:
                pairs = client.submit_all(op, [body for _, body in share])
            except EnclaveError:
                self._count(client, -len(share))
                client = None  # this connection failed: each request looks for another, below
        if client is None:
            for index, body in share:
                yield index, self._submit_one(op, body)
            return
        for (index, _), pair in zip(share, pairs, strict=True):
            yield index, self._track(client, *pair)

    def _submit_one(self, op: Op, body: Mapping[str, Any]) -> tuple[int, Future[Response]] | EnclaveError:
        try:
            return self._track(*self._send(op, body))
        except EnclaveError as error:
            return error

    def _count(self, client: EnclaveClient, change: int) -> None:
        """Add `change` to the requests in flight on `client` unless the probe has dropped it: before they
        are written (taken back if the write fails), so `_prune` never sees a batch on its way as idle."""
        with self._lock:
            if client in self._clients:
                self._in_flight[client] = max(self._in_flight.get(client, 0) + change, 0)

    def _track(
        self, client: EnclaveClient, inner_id: int, future: Future[Response]
    ) -> tuple[int, Future[Response]]:
        """Keep a request (counted by `_count`) in flight on `client` until its future is done; its id."""
        pool_id = next(self._ids)
        with self._lock:
            self._owners[pool_id] = (client, inner_id)
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
            self._worker_of, self._in_flight = {}, {}
        for client in clients:
            client.close()

    def _done(self, client: EnclaveClient) -> None:
        self._count(client, -1)
        self._window.release()

    def _send(self, op: Op, body: Mapping[str, Any]) -> tuple[EnclaveClient, int, Future[Response]]:
        """Submit on the best connection; when it cannot send, on the next, so one dead worker's
        connection does not fail a request another worker could take."""
        error: EnclaveError | None = None
        for client in self._ranked():
            self._count(client, 1)
            try:
                return (client, *client.submit(op, body))
            except EnclaveError as failed:
                self._count(client, -1)
                error = failed
        raise error or EnclaveError(
            ErrorCode.ENCLAVE_UNAVAILABLE, f"no connection to the enclave at {self._url}"
        )

    def _standing(self) -> list[tuple[EnclaveClient, bool, int]]:
        """Each connection, whether it is usable (connected, or free to reconnect) and how many it has in
        flight; probes first when a probe is due. `usable` takes the client's lock, so it is asked outside
        the pool's, which a future's done-callback takes while a connection fails its calls (lock order:
        never pool -> client)."""
        if time.monotonic() >= self._next_probe:
            self._probe()
        with self._lock:
            loads = [(client, self._in_flight.get(client, 0)) for client in self._clients]
        return [(client, client.usable, in_flight) for client, in_flight in loads]

    def _await_probe(self) -> None:
        """With no usable connection while another caller's probe is under way, wait for that probe (within
        the request timeout) rather than fail requests it is about to give a connection."""
        with self._lock:
            clients = list(self._clients) if self._probing else None
        if clients is None or any(client.usable for client in clients):  # `usable`: outside the pool's lock
            return
        log.info("no usable enclave connection yet: waiting for the probe under way")
        with self._lock:
            self._probe_ended.wait_for(lambda: not self._probing, self._timeout_s)

    def _ranked(self) -> list[EnclaveClient]:
        """Usable connections first, each group by fewest in flight: a dead or backing-off connection has
        nothing in flight and must not look like the idlest."""
        ranked = sorted(self._standing(), key=lambda standing: (not standing[1], standing[2]))
        return [client for client, _, _ in ranked]

    def _probe(self) -> None:
        """Re-learn which worker each connection reaches; drop the ones that fail; open connections until
        each worker has one. Bounded in total by `PROBE_BUDGET_S`."""
        with self._lock:
            if time.monotonic() < self._next_probe:
                return  # another thread is at it, or just was
            self._next_probe = time.monotonic() + PROBE_INTERVAL_S
            self._probing = True
            known = list(self._clients)
            previous = dict(self._worker_of)
        try:
            self._probe_known(known, previous)
        finally:
            with self._lock:
                self._probing = False
                self._probe_ended.notify_all()

    def _probe_known(self, known: list[EnclaveClient], previous: dict[EnclaveClient, int]) -> None:
        """The probe itself, from the connections held and the workers they reached at the last one."""
        deadline = time.monotonic() + PROBE_BUDGET_S
        answers = {client: self._identify(client, deadline) for client in known}
        reached = {c: a.worker for c, a in answers.items() if a.worker is not None}
        reached |= {
            c: previous[c] for c, a in answers.items() if a.worker is None and not a.failed and c in previous
        }
        count = max([a.workers for a in answers.values() if a.worker is not None] or [1])
        self._prune([c for c, a in answers.items() if a.failed], reached)
        count = self._open_missing(reached, count, deadline)
        self._after_probe(reached, count)

    def _prune(self, failed: list[EnclaveClient], reached: dict[EnclaveClient, int]) -> None:
        """Drop connections that failed their ping, and second connections to a worker carrying nothing."""
        with self._lock:
            seen: set[int] = set()
            dropped = list(failed)
            for client in self._clients:
                worker = reached.get(client)
                if worker is None:
                    continue
                if worker in seen and not self._in_flight.get(client, 0):
                    dropped.append(client)
                seen.add(worker)
            for client in dropped:
                reached.pop(client, None)
                self._in_flight.pop(client, None)
                if client in self._clients:
                    self._clients.remove(client)
        for client in dropped:
            client.close()

    def _open_missing(self, reached: dict[EnclaveClient, int], count: int, deadline: float) -> int:
        """Open connections until every worker has one, within the tries and the probe's deadline."""
        tries = 0
        while len(set(reached.values())) < count and tries < TRIES_PER_WORKER * count:
            if time.monotonic() >= deadline:
                break
            tries += 1
            client = EnclaveClient(self._url, request_timeout_s=self._timeout_s)
            answer = self._identify(client, deadline)
            if answer.worker is None or answer.worker in reached.values():
                client.close()
                continue
            count = max(count, answer.workers)
            reached[client] = answer.worker
            with self._lock:
                self._clients.append(client)
        return count

    def _after_probe(self, reached: dict[EnclaveClient, int], count: int) -> None:
        with self._lock:
            self._worker_of = {c: reached[c] for c in self._clients if c in reached}
            if len(set(reached.values())) < count:  # e.g. a worker still starting: look again soon
                self._next_probe = time.monotonic() + RETRY_PROBE_S
        if len(set(reached.values())) < count:
            log.warning(
                "not every enclave worker reached",
                extra={"fields": {"reached": len(set(reached.values())), "workers": count}},
            )

    @staticmethod
    def _identify(client: EnclaveClient, deadline: float) -> _Answer:
        """Ping within `PING_TIMEOUT_S` and the probe's deadline. Waits on the future itself: a late
        answer is not the connection's fault, so unlike `wait` this never drops it."""
        try:
            _, future = client.submit(Op.PING, {})
            response = future.result(timeout=max(min(PING_TIMEOUT_S, deadline - time.monotonic()), 0.0))
        except EnclaveError:
            return _Answer(failed=True)
        except FutureTimeout:
            return _Answer()
        if response.error is not None or response.body is None:
            return _Answer()
        return _Answer(int(response.body.get("worker", 0)), int(response.body.get("workers", 1)))

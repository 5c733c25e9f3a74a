"""The relay's pool of enclave connections against real FrameServers on TCP: what it keeps, what it drops,
where it sends, and that its probe never holds a caller for long. Which worker a connection reaches is
scripted through the ping answer (`worker`, `workers`), as the enclave's workers answer it."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import pytest

from app.parent import enclave_client, enclave_pool
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.parent.enclave_pool import EnclavePool
from app.shared import transport
from app.shared.protocol import ErrorCode, Op, Request, Response
from tests.enclave.server_helpers import running_server


class ScriptedWorkers:
    """A handler whose pings answer the next worker index from `script` (then repeat the last one)."""

    def __init__(self, script: list[int], workers: int = 2) -> None:
        self.script, self.workers = list(script), workers
        self.pings = 0
        self.hold_pings = threading.Event()  # set: pings block until `release` is set
        self.hold_answers = threading.Event()  # set: other requests block until `release` is set
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Response:
        if request.op is not Op.PING:
            if self.hold_answers.is_set():
                self.release.wait(10)
            return Response(request.id, body={"echo": request.body.get("echo")})
        if self.hold_pings.is_set():
            self.release.wait(10)
        with self._lock:
            self.pings += 1
            worker = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return Response(request.id, body={"status": "ok", "worker": worker, "workers": self.workers})


@pytest.fixture
def probe_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_pool, "PROBE_INTERVAL_S", 0.0)
    monkeypatch.setattr(enclave_pool, "RETRY_PROBE_S", 0.0)


def _echo(pool: EnclavePool, value: str) -> object:
    return pool.call(Op.DECRYPT, {"echo": value}).get("echo")


def _dead_url() -> str:
    listener = transport.listen(transport.parse_url("tcp://127.0.0.1:0"))
    url = transport.bound_url(listener, "tcp")
    listener.close()
    return url


def test_one_connection_per_worker(probe_every_call: None) -> None:
    with running_server(ScriptedWorkers([0, 1])) as (url, _):
        pool = EnclavePool(url)
        assert _echo(pool, "a") == "a"
        assert (pool.workers, pool.connections) == ([0, 1], 2)
        pool.close()


def test_a_second_connection_to_a_worker_is_dropped_once_idle(probe_every_call: None) -> None:
    """A worker restart: the old connection's reconnect lands on the other worker, so the probe opens
    one more to reach the restarted one. The pool must not keep all three."""
    script = ScriptedWorkers([0, 1])
    with running_server(script) as (url, _):
        pool = EnclavePool(url)
        _echo(pool, "before")
        script.script = [1, 1, 0]  # both known connections now reach worker 1; the next new one, 0
        assert _echo(pool, "after") == "after"
        assert (pool.workers, pool.connections) == ([0, 1], 2)
        for _ in range(3):  # and it stays so, probe after probe
            script.script = [1, 0]
            _echo(pool, "again")
        assert pool.connections == 2
        pool.close()


def test_connections_that_fail_their_ping_are_dropped(
    probe_every_call: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enclave_client, "RECONNECT_BACKOFF_S", (0.0,))
    with running_server(ScriptedWorkers([0], workers=1)) as (url, _):
        pool = EnclavePool(url)
        _echo(pool, "up")
        assert pool.connections == 1
    for _ in range(3):  # the enclave is gone: nothing to reconnect to (the first may still race its EOF)
        with pytest.raises(EnclaveError) as caught:
            _echo(pool, "down")
        assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
    assert pool.connections == 0
    pool.close()


def _seeded(pool: EnclavePool, clients: list[EnclaveClient]) -> None:
    """Hand the pool its connections directly and keep the probe away, to test the choice alone."""
    pool._clients = list(clients)
    pool._next_probe = time.monotonic() + 3600


def test_a_backing_off_connection_is_not_picked_for_being_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_client, "RECONNECT_BACKOFF_S", (60.0,))
    dead = EnclaveClient(_dead_url())
    with pytest.raises(EnclaveError):
        dead.call(Op.PING)  # now backing off, with nothing in flight: the "idlest" connection
    assert not dead.usable
    tried: list[Op] = []
    submit = dead.submit

    def counted(op: Op, body: Mapping[str, Any]) -> tuple[int, Future[Response]]:
        tried.append(op)
        return submit(op, body)

    monkeypatch.setattr(dead, "submit", counted)
    with running_server(ScriptedWorkers([0])) as (url, _):
        pool = EnclavePool(url)
        _seeded(pool, [dead, EnclaveClient(url)])
        for n in range(5):
            assert _echo(pool, f"card-{n}") == f"card-{n}"
        assert tried == []  # chosen first, not merely passed over after failing
        pool.close()


def test_a_connection_that_cannot_send_passes_the_request_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_client, "RECONNECT_BACKOFF_S", (0.0,))
    refused = EnclaveClient(_dead_url())  # usable (never tried), but every connect is refused
    assert refused.usable
    with running_server(ScriptedWorkers([0])) as (url, _):
        pool = EnclavePool(url)
        _seeded(pool, [refused, EnclaveClient(url)])
        assert _echo(pool, "passed on") == "passed on"
        pool.close()


def test_a_connection_dropped_while_a_caller_holds_it_passes_the_request_on_without_reconnecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller ranks the connections, then the probe drops (closes) the one it picked: the send fails
    over to the next, and the dropped one stays closed instead of reconnecting outside the pool."""
    with running_server(ScriptedWorkers([0])) as (url, _):
        pool = EnclavePool(url)
        dropped, kept = EnclaveClient(url), EnclaveClient(url)
        _seeded(pool, [kept])
        dropped.close()  # what `_prune` does to it
        monkeypatch.setattr(pool, "_ranked", lambda: [dropped, kept])  # ranked before the drop
        assert _echo(pool, "passed on") == "passed on"
        assert dropped._connection is None
        pool.close()


@pytest.fixture
def short_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_pool, "PING_TIMEOUT_S", 0.05)
    monkeypatch.setattr(enclave_pool, "PROBE_BUDGET_S", 0.3)


def test_a_probe_of_an_enclave_that_never_answers_ends_within_its_budget(short_probe: None) -> None:
    """Without a bound, each of the 8 tries would wait the 15 s request timeout, on a poller's thread."""
    script = ScriptedWorkers([0])
    script.hold_pings.set()
    with running_server(script) as (url, _):
        pool = EnclavePool(url)
        with pytest.raises(EnclaveError) as caught:
            pool.submit(Op.DECRYPT, {"echo": "x"})
        assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
        assert pool.connections == 0  # the unanswered new connections were closed
        script.release.set()
        pool.close()


def test_a_slow_ping_keeps_its_connection_and_its_requests(probe_every_call: None, short_probe: None) -> None:
    script = ScriptedWorkers([0], workers=1)
    with running_server(script) as (url, _):
        pool = EnclavePool(url)
        _echo(pool, "first")
        script.hold_pings.set()  # the next probe's ping goes unanswered in time
        assert _echo(pool, "during a slow probe") == "during a slow probe"
        assert (pool.workers, pool.connections) == ([0], 1)
        script.release.set()
        pool.close()


@pytest.fixture
def silent_peer() -> Iterator[Callable[[], str]]:
    """A listener that accepts and never reads: a wedged enclave whose receive buffer fills up."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield lambda: f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for sock in accepted:
        sock.close()
    listener.close()


def _fill(client: EnclaveClient, blob: str, count: int) -> None:
    for n in range(count):
        client.submit(Op.DECRYPT, {"echo": blob, "n": n})


def test_a_send_to_a_peer_that_stops_reading_fails_instead_of_blocking(
    silent_peer: Callable[[], str],
) -> None:
    client = EnclaveClient(silent_peer(), send_timeout_s=0.2)
    blob = "x" * 200_000
    with pytest.raises(EnclaveError) as caught:
        _fill(client, blob, 2000)  # far more than any socket buffer holds
    assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
    assert caught.value.retryable
    client.close()  # takes the connection's lock: it must not be held by a stuck send


def _answers(pool: EnclavePool, outcomes: list[tuple[int, Future[Response]] | EnclaveError]) -> list[object]:
    deadline = time.monotonic() + 5
    return [
        outcome.code if isinstance(outcome, EnclaveError) else pool.wait(*outcome, deadline).get("echo")
        for outcome in outcomes
    ]


def test_a_batch_is_spread_over_the_workers_connections() -> None:
    with running_server(ScriptedWorkers([0, 1])) as (url, _):
        pool = EnclavePool(url)
        _echo(pool, "connect")
        shares = pool._share(10)
        assert sorted(len(share) for share in shares.values()) == [5, 5]
        outcomes = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(10)])
        assert _answers(pool, outcomes) == list(range(10))
        pool.close()


def test_a_batch_beyond_the_window_gets_busy_for_the_rest_and_frees_its_slots() -> None:
    with running_server(ScriptedWorkers([0], workers=1)) as (url, _):
        pool = EnclavePool(url, window=3, request_timeout_s=0.2)
        outcomes = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(5)])
        assert _answers(pool, outcomes) == [0, 1, 2, ErrorCode.BUSY, ErrorCode.BUSY]
        again = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(3)])  # every slot came back
        assert _answers(pool, again) == [0, 1, 2]
        pool.close()


def test_a_batch_on_a_connection_that_cannot_send_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enclave_client, "RECONNECT_BACKOFF_S", (0.0,))
    with running_server(ScriptedWorkers([0])) as (url, _):
        pool = EnclavePool(url, window=4)
        _seeded(pool, [EnclaveClient(_dead_url()), EnclaveClient(url)])
        outcomes = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(4)])
        assert _answers(pool, outcomes) == [0, 1, 2, 3]
        assert pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(4)])  # no slot was lost
        pool.close()


def test_an_unreachable_enclave_fails_each_request_of_a_batch_and_keeps_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(enclave_pool, "PROBE_BUDGET_S", 0.2)
    pool = EnclavePool(_dead_url(), window=2, request_timeout_s=0.2)
    for _ in range(3):  # were slots leaked, the third round would get busy instead
        outcomes = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(2)])
        assert [o.code for o in outcomes if isinstance(o, EnclaveError)] == [
            ErrorCode.ENCLAVE_UNAVAILABLE
        ] * 2
    pool.close()


def test_a_connection_failing_its_calls_while_pollers_pick_and_reconnect_never_deadlocks() -> None:
    """The lock cycle a review found: a poller ranking connections (the pool's lock, then a client's),
    another reconnecting (the client's lock, then its connection's), and the reader failing the calls
    pending on that connection, whose done-callbacks take the pool's lock. Each thread is given its step
    in that order; every one must finish. (The joins' timeout is only the fail-safe of a hung test.)"""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never answers: the call stays pending
    url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    pool = EnclavePool(url)
    pool._next_probe = time.monotonic() + 3600  # no probe: the clients are set up by hand
    client = EnclaveClient(url)
    pool._clients = [client]
    inner_id, future = client.submit(Op.PING, {})
    assert pool._window.acquire(1, 1) == 1
    pool._track(client, inner_id, future)  # as pool.submit does: the done-callback takes the pool's lock
    connection = client._connection
    assert connection is not None
    reader_holds_lock = threading.Event()

    def reader_fails_pending() -> None:  # what the reader does when the worker dies
        with connection.lock:
            reader_holds_lock.set()
            time.sleep(0.3)  # the other two line up behind the locks meanwhile
            failed = connection._shut("worker died")
        connection._fail(failed)

    def poller_reconnects() -> None:
        reader_holds_lock.wait()
        client._connected()

    def poller_shares() -> None:
        reader_holds_lock.wait()
        time.sleep(0.1)
        pool._share(1)

    threads = [
        threading.Thread(target=f, daemon=True)
        for f in (reader_fails_pending, poller_reconnects, poller_shares)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert [t.is_alive() for t in threads] == [False, False, False]
    with pytest.raises(EnclaveError) as caught:
        future.result(timeout=0)
    assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
    pool.close()
    listener.close()


def _settled(pool: EnclavePool, outcomes: list[tuple[int, Future[Response]] | EnclaveError]) -> list[object]:
    """Each request's echo, or the code of its error, whether it failed at submit or at wait."""
    deadline, settled = time.monotonic() + 5, []
    for outcome in outcomes:
        try:
            if isinstance(outcome, EnclaveError):
                raise outcome
            settled.append(pool.wait(*outcome, deadline).get("echo"))
        except EnclaveError as error:
            settled.append(error.code)
    return settled


def test_a_probe_between_a_batchs_write_and_its_count_keeps_that_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another poller's probe runs after a batch is written on a connection and before the pool counted it
    in flight, and finds that connection a second one to its worker. Dropping it (it looked idle) failed
    the batch as `enclave_unavailable` although the worker was healthy."""
    script = ScriptedWorkers([0], workers=1)
    script.hold_answers.set()  # the batch is still being worked on when the probe runs
    with running_server(script) as (url, _):
        pool = EnclavePool(url, window=2)
        first, second = EnclaveClient(url), EnclaveClient(url)
        _seeded(pool, [first, second])  # both reach worker 0: the probe drops the second if it looks idle
        write = second.submit_all

        def write_then_probe(op: Op, bodies: list[Mapping[str, Any]]) -> list[tuple[int, Future[Response]]]:
            written = write(op, bodies)
            if op is not Op.DECRYPT:  # the probe's own ping goes this way too
                return written
            pool._next_probe = 0.0  # another poller finds a probe due now, and runs it
            poller = threading.Thread(target=pool._standing)
            poller.start()
            poller.join(20)
            script.release.set()
            return written

        monkeypatch.setattr(second, "submit_all", write_then_probe)
        outcomes = pool.submit_each(Op.DECRYPT, [{"echo": n} for n in range(2)])  # one on each
        assert _settled(pool, outcomes) == [0, 1]
        pool.close()


def test_a_batch_that_arrives_during_the_first_probe_waits_for_its_connections(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A relay's pollers start together: the first with a batch runs the pool's first probe, and a second
    batch arriving meanwhile found no connection yet and failed whole as `enclave_unavailable`. The probe
    is held at its first ping until the second batch has either settled or started waiting."""
    monkeypatch.setattr(enclave_pool, "PROBE_BUDGET_S", 30.0)  # the hold below must not use it up
    monkeypatch.setattr(enclave_pool, "PING_TIMEOUT_S", 30.0)
    probing, decided, go = threading.Event(), threading.Event(), threading.Event()
    identify = EnclavePool._identify

    def held(client: EnclaveClient, deadline: float) -> object:
        probing.set()
        go.wait(20)  # fail-safe only: `go` is set as soon as the second batch has decided
        return identify(client, deadline)

    class Decided(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for the probe" in record.getMessage():
                decided.set()

    handler = Decided()
    enclave_pool.log.addHandler(handler)
    caplog.set_level(logging.INFO, logger=enclave_pool.log.name)
    outcomes: dict[str, list[object]] = {}
    with running_server(ScriptedWorkers([0], workers=1)) as (url, _):
        pool = EnclavePool(url, window=20)
        monkeypatch.setattr(pool, "_identify", held)

        def batch(name: str) -> None:
            bodies = [{"echo": n} for n in range(10)]
            try:
                outcomes[name] = _settled(pool, pool.submit_each(Op.DECRYPT, bodies))
            finally:
                decided.set()

        first = threading.Thread(target=batch, args=("first",))
        first.start()
        assert probing.wait(20)
        second = threading.Thread(target=batch, args=("second",))
        second.start()
        assert decided.wait(20)
        go.set()
        for thread in (first, second):
            thread.join(20)
        pool.close()
    enclave_pool.log.removeHandler(handler)
    assert outcomes == {"first": list(range(10)), "second": list(range(10))}

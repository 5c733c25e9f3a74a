"""Wires the enclave server together: a supervisor with one worker process per vCPU (`workers.py`).

Shared by the real entry point (/dev/nsm, vsock) and local mode (software NSM, TCP), which differ only
in the secure module and the URLs they pass in. Each entry point re-runs itself for every worker, with
the inherited listener's descriptor added (`workers.Seat.argv`); SIGTERM/SIGINT drains, a second signal
exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from app.enclave import log_channel, workers
from app.enclave.decryptor import Decryptor
from app.enclave.handler import EnclaveHandler
from app.enclave.kms_client import KmsClient
from app.enclave.nsm import SecureModule
from app.enclave.server import FrameServer
from app.shared import transport

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class EnclaveSettings:
    listen_url: str
    kms_egress_url: str
    kms_endpoint_url: str | None = None
    log_url: str | None = None  # None or "off": no log channel (entry points read $ENCLAVE_LOG_URL)
    workers: int | None = None  # None: one per vCPU


def run(
    settings: EnclaveSettings, seat: workers.Seat | None, nsm: Callable[[], SecureModule],
    entry_argv: Sequence[str],
) -> int:  # fmt: skip
    """The supervisor (seat None) or one worker; `entry_argv` re-runs this entry point for a worker."""
    channel = _open_log_channel(settings)
    try:
        if seat is None:
            return supervise(settings, lambda s: [*entry_argv, *s.argv()])
        return serve_worker(settings, seat, nsm())
    finally:
        if channel is not None:
            log_channel.uninstall(channel)


def _open_log_channel(settings: EnclaveSettings) -> log_channel.ChannelHandler | None:
    log_url = log_channel.resolve_url(settings.log_url, None)
    return log_channel.install(log_url) if log_url else None


def supervise(settings: EnclaveSettings, command: Callable[[workers.Seat], list[str]]) -> int:
    count = workers.worker_count(settings.workers)
    endpoint = transport.parse_url(settings.listen_url)
    listener = transport.listen(endpoint)
    supervisor = workers.Supervisor(listener, count, command, DRAIN_TIMEOUT_S)
    supervisor.install_signals()
    log.info(
        "enclave server listening",
        extra={
            "fields": {
                "listen": transport.bound_url(listener, endpoint.scheme),
                "egress": settings.kms_egress_url,
                "workers": count,
                "kms_connections_per_worker": workers.kms_connections_per_worker(count),
                "log_channel": settings.log_url or "off",
            }
        },
    )
    return supervisor.run()


def serve_worker(settings: EnclaveSettings, seat: workers.Seat, nsm: SecureModule) -> int:
    workers.exit_when_orphaned(seat)
    kms = KmsClient(
        settings.kms_egress_url, max_connections=seat.kms_connections, endpoint_url=settings.kms_endpoint_url
    )
    decryptor = Decryptor(nsm, kms)
    decryptor.prepare()  # key pair and attestation document before the first request
    handler = EnclaveHandler(decryptor, nsm, worker=seat.index, workers=seat.count)
    # Each thread holds at most one KMS connection: more threads would only queue for one.
    server = FrameServer(workers.adopt_listener(seat), handler, workers=seat.kms_connections)
    drainer = threading.Thread(target=_drain, args=(server, kms), name="drain")
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            os._exit(1)  # second signal: the operator wants out now
        stopping.set()
        log.info(
            "worker stopping", extra={"fields": {"worker": seat.index, "signal": signal.Signals(signum).name}}
        )
        drainer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("worker serving", extra={"fields": {"worker": seat.index, "pid": os.getpid()}})
    server.serve_forever()
    drainer.join()
    return 0


def _drain(server: FrameServer, kms: KmsClient) -> None:
    drained = server.stop(DRAIN_TIMEOUT_S)
    kms.close()
    log.info("worker stopped", extra={"fields": {"drained": drained}})

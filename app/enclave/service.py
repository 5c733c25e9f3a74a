"""Wires the enclave server together and runs it until SIGTERM/SIGINT (a second signal exits at once).

Shared by the real entry point (/dev/nsm, vsock) and local mode (software NSM, TCP), which differ only
in the secure module and the URLs they pass in.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

from app.enclave import log_channel
from app.enclave.decryptor import Decryptor, KmsClients, KmsSettings
from app.enclave.egress import ConnectProxy, kms_allowlist
from app.enclave.handler import EnclaveHandler
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


def _egress_extra(endpoint_url: str | None) -> tuple[str, ...]:
    """An explicit KMS endpoint (the emulator, locally) is allowed through the egress proxy by name."""
    if endpoint_url is None:
        return ()
    parts = urlsplit(endpoint_url)
    return (f"{parts.hostname}:{parts.port or 443}",)


def serve(settings: EnclaveSettings, nsm: SecureModule) -> int:
    log_url = log_channel.resolve_url(settings.log_url, None)
    channel = log_channel.install(log_url) if log_url else None
    proxy = ConnectProxy(settings.kms_egress_url, kms_allowlist(_egress_extra(settings.kms_endpoint_url)))
    proxy.start()
    decryptor = Decryptor(nsm, KmsClients(KmsSettings(proxy.url, settings.kms_endpoint_url)))
    endpoint = transport.parse_url(settings.listen_url)
    listener = transport.listen(endpoint)
    server = FrameServer(listener, EnclaveHandler(decryptor, nsm))
    drainer = threading.Thread(target=_drain, args=(server, proxy), name="drain")

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if drainer.is_alive():
            os._exit(1)  # second signal: the operator wants out now
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        drainer.start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "enclave server listening",
        extra={
            "fields": {
                "listen": transport.bound_url(listener, endpoint.scheme),
                "egress": settings.kms_egress_url,
                "log_channel": log_url or "off",
            }
        },
    )
    server.serve_forever()
    drainer.join()
    if channel is not None:
        log_channel.uninstall(channel)
    return 0


def _drain(server: FrameServer, proxy: ConnectProxy) -> None:
    drained = server.stop(DRAIN_TIMEOUT_S)
    proxy.close()
    log.info("stopped", extra={"fields": {"drained": drained}})

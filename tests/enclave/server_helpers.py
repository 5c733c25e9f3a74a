"""A FrameServer on 127.0.0.1 with a scriptable handler, run in a thread for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from app.enclave.clock import EnclaveClock
from app.enclave.decryptor import Decryptor
from app.enclave.handler import EnclaveHandler
from app.enclave.kms_client import KmsClient
from app.enclave.server import FrameServer, Handler
from app.local.software_nsm import SoftwareNsm
from app.shared import framing, protocol, transport
from app.shared.protocol import Op, Request, Response
from tests.attestation_helpers import local_pki

NSM_TIME = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)


def scripted_handler(request: Request) -> Response:
    """ping → ok; decrypt with body {"sleep": s, "echo": x} → {"echo": x} after s; {"boom": true} → raises."""
    if request.op is Op.PING:
        return Response(request.id, body={"status": "ok", "protocol": 1})
    if request.body.get("boom"):
        raise RuntimeError("handler bug")
    time.sleep(float(request.body.get("sleep", 0)))
    return Response(request.id, body={"echo": request.body.get("echo")})


def skewed_handler(enclave_ahead_s: float, *, prepared: bool = True) -> EnclaveHandler:
    """The real handler of an enclave whose clock reads the NSM's time + `enclave_ahead_s` (fixed clocks).
    `prepared`: its first key pair and document made, so its ping carries a clock reading."""
    nsm = SoftwareNsm(local_pki(), {0: bytes(range(48))}, clock=lambda: NSM_TIME)
    clock = EnclaveClock(wall=(NSM_TIME + timedelta(seconds=enclave_ahead_s)).timestamp)
    decryptor = Decryptor(nsm, KmsClient("tcp://127.0.0.1:1", max_connections=1), clock=clock)
    if prepared:
        decryptor.prepare()
    return EnclaveHandler(decryptor, nsm)


@contextmanager
def running_server(
    handler: Handler = scripted_handler, port: int = 0, **options: int
) -> Iterator[tuple[str, FrameServer]]:
    """`options` go to FrameServer (e.g. max_connections)."""
    listener = transport.listen(transport.Endpoint("tcp", "127.0.0.1", port))
    server = FrameServer(listener, handler, workers=16, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield transport.bound_url(listener, "tcp"), server
    finally:
        server.stop(drain_timeout_s=2)
        thread.join(5)


def roundtrip(sock_url: str, payload: bytes, *, read_timeout_s: float = 3.0) -> list[Response]:
    """Send raw bytes on a fresh connection and collect whatever frames come back until it closes or idles."""
    sock = transport.connect(transport.parse_url(sock_url))
    sock.settimeout(read_timeout_s)
    sock.sendall(payload)
    decoder = framing.FrameDecoder()
    responses: list[Response] = []
    try:
        while data := sock.recv(65536):
            responses += [protocol.decode_response(f) for f in decoder.feed(data)]
    except TimeoutError:
        pass
    finally:
        sock.close()
    return responses

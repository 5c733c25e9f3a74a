"""The local AWS emulator: moto's KMS and SQS in one process, on plain HTTP and on HTTPS for localhost.

Both listeners serve the same in-memory backends. KMS Decrypt gets the Recipient behaviour of real KMS
(`kms_recipient`) before anything is served. Local mode only; nothing in the enclave image imports it.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType, TracebackType

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from app.local import kms_recipient, moto_fidelity
from app.local.software_nsm import LocalPki
from app.shared import logs

LOOPBACK = "127.0.0.1"
TLS_HOSTNAME = "localhost"  # the certificate names localhost, so clients check a real hostname
ATTESTATION_MAX_AGE_S = 300
PIN_HEX_LENGTH = 96  # SHA-384, lowercase hex, like kms:RecipientAttestation:ImageSha384


@dataclass(frozen=True)
class Endpoints:
    http: str
    https: str

    def ready_line(self) -> str:
        return json.dumps({"http": self.http, "https": self.https}, separators=(",", ":"))


def tls_context(pki: LocalPki, work_dir: Path) -> ssl.SSLContext:
    """A server context with the PKI's certificate for localhost (key files live in the run dir)."""
    cert_pem, key_pem = pki.tls_certificate_for(TLS_HOSTNAME)
    cert_file, key_file = work_dir / "emulator-tls.crt", work_dir / "emulator-tls.key"
    cert_file.write_bytes(cert_pem)
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class Emulator:
    """Serve moto twice (HTTP and HTTPS) in daemon threads; `with Emulator(...) as endpoints:`."""

    def __init__(self, tls: ssl.SSLContext):
        app = DomainDispatcherApplication(create_backend_app)
        self._servers: list[BaseWSGIServer] = [
            make_server(LOOPBACK, 0, app, threaded=True, request_handler=MotoRequestHandler),
            make_server(LOOPBACK, 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=tls),
        ]
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers]
        self.endpoints = Endpoints(
            http=f"http://{LOOPBACK}:{self._servers[0].server_port}",
            https=f"https://{TLS_HOSTNAME}:{self._servers[1].server_port}",
        )

    def __enter__(self) -> Endpoints:
        for thread in self._threads:
            thread.start()
        return self.endpoints

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def speed_up_moto_clock() -> None:
    """Make moto's SQS clock cheap: same UTC epoch value, ~10x less CPU.

    moto reads the clock through datetime arithmetic for every stored message on every SQS call
    (O(queue depth)); with this a 1,000-card queue stays usable. Semantics are unchanged.
    """
    import moto.sqs.models as sqs_models  # noqa: PLC0415 - patching moto is local-mode only

    names = vars(sqs_models)  # moto imports these into the module; that is where SQS looks them up
    original_s, original_ms = names["unix_time"], names["unix_time_millis"]

    def unix_time(dt: datetime | None = None) -> float:
        return time.time() if dt is None else float(original_s(dt))

    def unix_time_millis(dt: datetime | None = None) -> float:
        return time.time() * 1000.0 if dt is None else float(original_ms(dt))

    names.update(unix_time=unix_time, unix_time_millis=unix_time_millis)


def parse_pin(value: str) -> str:
    pin = value.strip().lower()
    if len(pin) != PIN_HEX_LENGTH or any(c not in "0123456789abcdef" for c in pin):
        raise argparse.ArgumentTypeError(f"a pin is {PIN_HEX_LENGTH} hex digits (SHA-384), got {value!r}")
    return pin


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.local.emulator", description=__doc__)
    p.add_argument("--pki", type=Path, required=True, help="directory written by LocalPki.save()")
    p.add_argument("--pin", type=parse_pin, action="append", required=True, help="allowed PCR0 (hex)")
    p.add_argument("--max-age", type=float, default=ATTESTATION_MAX_AGE_S, help="attestation freshness (s)")
    return p


def serve_until_signal(emulator: Emulator) -> None:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with emulator as endpoints:
        print(endpoints.ready_line(), flush=True)
        stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    args = parser().parse_args(argv)
    pki = LocalPki.load(args.pki)
    policy = kms_recipient.RecipientPolicy(
        root_certificate_der=pki.root_certificate_der,
        allowed_image_sha384=frozenset(args.pin),
        max_age_s=args.max_age,
    )
    kms_recipient.install(policy)
    speed_up_moto_clock()
    moto_fidelity.install()  # atomic SQS deletes; Decrypt's KeyId checked as KMS does
    serve_until_signal(Emulator(tls_context(pki, args.pki)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

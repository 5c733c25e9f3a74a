"""The local AWS emulator: moto's KMS and SQS in one process, on plain HTTP and on HTTPS for localhost.

Both listeners serve the same in-memory backends. Before anything is served, every KMS call is
authorized with the key's own policy and Decrypt gets the Recipient behaviour of real KMS
(`kms_enforcement`); the pin lives in the key policy that provisioning writes. Local mode only; nothing
in the enclave image imports it.
The HTTP server is cheroot, not werkzeug's development server: werkzeug sends `Connection: close` on
every response (werkzeug/serving.py, `run_wsgi`), so every AWS call from the enclave and the relay paid
a new TCP connection, CONNECT tunnel and full TLS handshake that the real endpoints, which keep HTTP/1.1
connections alive, do not ask for; the benchmark measured that habit instead of our code.
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

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from app.local import moto_fidelity
from app.local.kms_enforcement import install_policy_enforcement
from app.local.software_nsm import LocalPki
from app.shared import logs

LOOPBACK = "127.0.0.1"
TLS_HOSTNAME = "localhost"  # the certificate names localhost, so clients check a real hostname
ATTESTATION_MAX_AGE_S = 300
# Enough threads for every connection the enclave (deployment.KMS_CONNECTIONS) and the relay hold at once.
SERVER_THREADS = 96
IDLE_KEEP_ALIVE_S = 60  # an idle connection is closed after this; clients reconnect, as with AWS


@dataclass(frozen=True)
class Endpoints:
    http: str
    https: str

    def ready_line(self) -> str:
        return json.dumps({"http": self.http, "https": self.https}, separators=(",", ":"))


@dataclass(frozen=True)
class TlsFiles:
    """The PKI's certificate and key for localhost, written into the run directory for the server."""

    certificate: Path
    private_key: Path


def tls_files(pki: LocalPki, work_dir: Path, extra_names: Sequence[str] = ()) -> TlsFiles:
    cert_pem, key_pem = pki.tls_certificate_for(TLS_HOSTNAME, *extra_names)
    cert_file, key_file = work_dir / "emulator-tls.crt", work_dir / "emulator-tls.key"
    cert_file.write_bytes(cert_pem)
    key_file.touch(mode=0o600)
    key_file.write_bytes(key_pem)
    return TlsFiles(cert_file, key_file)


def _tls_adapter(files: TlsFiles) -> BuiltinSSLAdapter:
    adapter = BuiltinSSLAdapter(str(files.certificate), str(files.private_key))
    adapter.context.minimum_version = ssl.TLSVersion.TLSv1_2
    return adapter


class Emulator:
    """Serve moto twice (HTTP and HTTPS) in daemon threads; `with Emulator(...) as endpoints:`."""

    def __init__(self, tls: TlsFiles):
        app = DomainDispatcherApplication(create_backend_app)
        self._servers = [self._server(app), self._server(app)]
        self._servers[1].ssl_adapter = _tls_adapter(tls)
        for server in self._servers:
            server.prepare()  # binds port 0: the real ports are known from here on
        self._threads = [threading.Thread(target=s.serve, daemon=True) for s in self._servers]
        self.endpoints = Endpoints(
            http=f"http://{LOOPBACK}:{self._servers[0].bind_addr[1]}",
            https=f"https://{TLS_HOSTNAME}:{self._servers[1].bind_addr[1]}",
        )

    @staticmethod
    def _server(app: DomainDispatcherApplication) -> wsgi.Server:
        server = wsgi.Server(
            (LOOPBACK, 0), app, numthreads=SERVER_THREADS, timeout=IDLE_KEEP_ALIVE_S, request_queue_size=128
        )
        # cheroot keeps at most 10 idle keep-alive connections by default and closes the rest after
        # each answer (cheroot/server.py, HTTPServer.keep_alive_conn_limit); AWS sets no such low limit.
        server.keep_alive_conn_limit = SERVER_THREADS
        return server

    def __enter__(self) -> Endpoints:
        for thread in self._threads:
            thread.start()
        return self.endpoints

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        for server in self._servers:
            server.stop()


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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.local.emulator", description=__doc__)
    p.add_argument("--pki", type=Path, required=True, help="directory written by LocalPki.save()")
    p.add_argument("--max-age", type=float, default=ATTESTATION_MAX_AGE_S, help="attestation freshness (s)")
    p.add_argument(
        "--tls-name",
        action="append",
        default=[],
        help="another name the HTTPS certificate holds (the rehearsal: kms.<region>.amazonaws.com)",
    )
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
    install_policy_enforcement(pki.root_certificate_der, max_age_s=args.max_age)
    speed_up_moto_clock()
    moto_fidelity.install()  # atomic SQS deletes; Decrypt's KeyId checked as KMS does
    serve_until_signal(Emulator(tls_files(pki, args.pki, args.tls_name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

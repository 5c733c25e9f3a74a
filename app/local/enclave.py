"""Local stand-in for the Nitro Enclave: the real enclave service, with a software NSM and TCP.

Only the secure module and the URLs differ from `python -m app.enclave`. The software NSM reports as
PCR0 the measurement of the enclave's own source files; `--tamper` reports the measurement of a changed
image instead, which the emulated key policy must refuse.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
from pathlib import Path

from app.enclave import workers
from app.enclave.service import EnclaveSettings, run
from app.local.software_nsm import TLS_CA_FILE, LocalPki, SoftwareNsm, measure_enclave_sources
from app.shared import logs, settings, transport

log = logging.getLogger("app.local.enclave")

REPO_ROOT = Path(__file__).resolve().parents[2]
TAMPER_MARK = b"\n# an operator's one-line change to the enclave code\n"


def enclave_measurement(*, tamper: bool = False) -> bytes:
    """PCR0 of the software enclave: its sources' digest, or a changed image's when tampering."""
    measurement = measure_enclave_sources(REPO_ROOT)
    return hashlib.sha384(measurement + TAMPER_MARK).digest() if tamper else measurement


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m app.local.enclave", description=__doc__)
    parser.add_argument("--listen", required=True, help="tcp://127.0.0.1:PORT")
    parser.add_argument("--pki", required=True, type=Path, help="directory written by LocalPki.save")
    parser.add_argument("--kms-endpoint", required=True, help="the emulator's HTTPS URL")
    parser.add_argument("--egress", required=True, help="tcp://127.0.0.1:PORT of the emulator's TLS port")
    parser.add_argument("--tamper", action="store_true", help="report a measurement the policy does not pin")
    parser.add_argument(
        "--log-url",
        default=settings.env(settings.ENV_ENCLAVE_LOG_URL),
        help="the parent's log sink (default: off)",
    )
    workers.add_arguments(parser)
    args = parser.parse_args(given)
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    # The "enclave" must trust the emulator's TLS certificate, as it trusts KMS's on Nitro.
    os.environ["AWS_CA_BUNDLE"] = str(args.pki / TLS_CA_FILE)
    seat = workers.seat_from(args)

    def software_nsm() -> SoftwareNsm:
        measurement = enclave_measurement(tamper=args.tamper)
        log.info("software enclave measured", extra=logs.fields(pcr0=measurement.hex(), tampered=args.tamper))
        return SoftwareNsm(LocalPki.load(args.pki), {0: measurement})

    enclave = EnclaveSettings(args.listen, args.egress, args.kms_endpoint, args.log_url, args.workers)
    try:
        return run(enclave, seat, software_nsm, [sys.executable, "-m", "app.local.enclave", *given])
    except (transport.TransportError, ValueError) as error:
        log.error("enclave server cannot start", extra=logs.fields(error=str(error)))
        return 1


if __name__ == "__main__":
    sys.exit(main())

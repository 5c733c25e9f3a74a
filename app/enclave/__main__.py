"""Entry point inside the Nitro Enclave: `python -m app.enclave` (see the Dockerfile).

Options > environment (LISTEN_URL, KMS_EGRESS_URL, KMS_ENDPOINT_URL, ENCLAVE_LOG_URL) > defaults for Nitro.
"""

from __future__ import annotations

import argparse
import logging
import sys

from app.enclave import workers
from app.enclave.nsm import NsmDevice, NsmError
from app.enclave.service import EnclaveSettings, run
from app.shared import logs, settings, transport

log = logging.getLogger("app.enclave")


def parse_args(argv: list[str]) -> tuple[EnclaveSettings, workers.Seat | None]:
    parser = argparse.ArgumentParser(prog="python -m app.enclave", description=__doc__)
    parser.add_argument(
        "--listen", default=settings.env(settings.ENV_LISTEN_URL, settings.DEFAULT_LISTEN_URL)
    )
    parser.add_argument(
        "--egress", default=settings.env(settings.ENV_KMS_EGRESS_URL, settings.DEFAULT_KMS_EGRESS_URL)
    )
    parser.add_argument("--kms-endpoint", default=settings.env(settings.ENV_KMS_ENDPOINT_URL))
    parser.add_argument(
        "--log-url",
        default=settings.env(settings.ENV_ENCLAVE_LOG_URL, settings.DEFAULT_ENCLAVE_LOG_URL),
        help="where the parent's `app.parent logs` listens; 'off' to send no logs",
    )
    workers.add_arguments(parser)
    args = parser.parse_args(argv)
    enclave = EnclaveSettings(args.listen, args.egress, args.kms_endpoint, args.log_url, args.workers)
    return enclave, workers.seat_from(args)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    enclave_settings, seat = parse_args(args)
    logs.configure(settings.env(settings.ENV_LOG_LEVEL, "INFO") or "INFO")
    try:
        # No `lo` bring-up: enclaves boot with it down, and nothing here listens on or dials 127.0.0.1 (the
        # KMS client and the log channel use vsock; the workers inherit the vsock listener).
        return run(enclave_settings, seat, NsmDevice, [sys.executable, "-m", "app.enclave", *args])
    except (NsmError, transport.TransportError, OSError, ValueError) as error:
        log.error("enclave server cannot start", extra={"fields": {"error": str(error)}})
        return 1


if __name__ == "__main__":
    sys.exit(main())

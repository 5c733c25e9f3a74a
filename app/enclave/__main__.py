"""Entry point inside the Nitro Enclave: `python -m app.enclave` (see the Dockerfile).

Options > environment (LISTEN_URL, KMS_EGRESS_URL, KMS_ENDPOINT_URL, ENCLAVE_LOG_URL) > defaults for Nitro.
"""

from __future__ import annotations

import argparse
import logging
import sys

from app.enclave import loopback
from app.enclave.nsm import NsmDevice, NsmError
from app.enclave.service import EnclaveSettings, serve
from app.shared import logs, settings, transport

log = logging.getLogger("app.enclave")


def parse_args(argv: list[str]) -> EnclaveSettings:
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
    args = parser.parse_args(argv)
    return EnclaveSettings(args.listen, args.egress, args.kms_endpoint, args.log_url)


def main(argv: list[str] | None = None) -> int:
    enclave_settings = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(settings.env(settings.ENV_LOG_LEVEL, "INFO") or "INFO")
    try:
        loopback.bring_up_loopback()  # enclaves boot with lo down; the egress proxy needs it
        nsm = NsmDevice()
        return serve(enclave_settings, nsm)
    except (NsmError, transport.TransportError, OSError) as error:
        log.error("enclave server cannot start", extra={"fields": {"error": str(error)}})
        return 1


if __name__ == "__main__":
    sys.exit(main())

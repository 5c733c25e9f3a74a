"""Environment variable names and defaults, declared once for every program.

Precedence everywhere: explicit command-line argument > environment variable > default here. The
deployed host writes these variables to one env file (/etc/nitro-enclave-demo/demo.env).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from app.shared import vsock_tcp

ENV_REGION = "AWS_REGION"
ENV_CARDS_QUEUE_URL = "CARDS_QUEUE_URL"
ENV_RESULTS_QUEUE_URL = "RESULTS_QUEUE_URL"
ENV_DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
ENV_KMS_KEY_ID = "KMS_KEY_ID"
ENV_ENCRYPTION_CONTEXT = "ENCRYPTION_CONTEXT"
ENV_ENCLAVE_URL = "ENCLAVE_URL"
ENV_LISTEN_URL = "LISTEN_URL"
ENV_KMS_EGRESS_URL = "KMS_EGRESS_URL"
ENV_KMS_ENDPOINT_URL = "KMS_ENDPOINT_URL"
ENV_LOG_LEVEL = "LOG_LEVEL"
ENV_ENCLAVE_LOG_URL = "ENCLAVE_LOG_URL"  # where the enclave ships its own log lines
ENV_ENCLAVE_LOG_LISTEN_URL = "ENCLAVE_LOG_LISTEN_URL"  # where the parent's log sink listens
# The root a reader of results trusts, as a PEM file; unset: the AWS Nitro root. Local mode and the
# rehearsal set it to the local PKI's root (their software NSM's).
ENV_ATTESTATION_ROOT_PEM = "ATTESTATION_ROOT_PEM"
# The rehearsal only (`make rehearse`): this machine's CID; vsock is carried over TCP. Named beside
# its mapping rule in app.shared.vsock_tcp, so the rehearsal's stand-ins can use that one file unchanged.
ENV_VSOCK_OVER_TCP = vsock_tcp.ENV_VSOCK_OVER_TCP

DEFAULT_REGION = "us-east-1"
DEFAULT_KEY_ALIAS = "alias/nitro-enclave-demo"
DEFAULT_ENCRYPTION_CONTEXT: Mapping[str, str] = {"app": "nitro-enclave-demo"}
ENCLAVE_PORT = 5000
DEFAULT_ENCLAVE_CID = 16
DEFAULT_ENCLAVE_URL = f"vsock://{DEFAULT_ENCLAVE_CID}:{ENCLAVE_PORT}"
DEFAULT_LISTEN_URL = f"vsock://any:{ENCLAVE_PORT}"
# The parent's nitro-enclaves-vsock-proxy forwards this vsock port to kms.<region>.amazonaws.com:443.
DEFAULT_KMS_EGRESS_URL = "vsock://3:8000"
# The enclave's log channel: not 5000 (requests), 8000 (KMS egress) or 9000 (the enclave's ready signal).
ENCLAVE_LOG_PORT = 5005
DEFAULT_ENCLAVE_LOG_URL = f"vsock://3:{ENCLAVE_LOG_PORT}"
DEFAULT_ENCLAVE_LOG_LISTEN_URL = f"vsock://any:{ENCLAVE_LOG_PORT}"


class SettingsError(ValueError):
    """A required setting is missing or malformed (the message names the variable)."""


def env(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return value if value else default


def require(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"{name} is not set (pass it as an option or set the {name} variable)")
    return value


def parse_encryption_context(raw: str | None) -> dict[str, str]:
    """The fixed encryption-context pairs, from a JSON object string (default: the app pair)."""
    if not raw:
        return dict(DEFAULT_ENCRYPTION_CONTEXT)
    try:
        parsed = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"{ENV_ENCRYPTION_CONTEXT} is not JSON: {raw!r}") from error
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise SettingsError(f"{ENV_ENCRYPTION_CONTEXT} must be a JSON object of strings: {raw!r}")
    return parsed

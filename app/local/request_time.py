"""SigV4's time check, which moto does not make: a request signed more than 5 minutes from now is refused.

Real AWS answers `InvalidSignatureException` with "Signature expired: <signed> is now earlier than
<now - 5 min> (<now> - 5 min.)" or "Signature not yet current: <signed> is still later than <now + 5 min>
(<now> + 5 min.)" (KMS's wording as quoted in aws/aws-sdk-js#2340, serverless/enterprise#11). The emulator's
KMS calls this before anything else, so a skewed signer fails here as it would against KMS. Local mode only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from app.local.kms_recipient import RecipientRefused

SIGV4_WINDOW = timedelta(minutes=5)
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
INVALID_SIGNATURE = "InvalidSignatureException"
INCOMPLETE_SIGNATURE = "IncompleteSignatureException"


def check_request_time(headers: Mapping[str, str], now: datetime | None = None) -> None:
    """Raise RecipientRefused as AWS does when the X-Amz-Date header is missing, unreadable or outside
    SigV4's window around `now` (default: this machine's clock)."""
    when = (now or datetime.now(UTC)).replace(microsecond=0)
    value = next((v for k, v in headers.items() if k.lower() == "x-amz-date"), None)
    if value is None:
        raise RecipientRefused(
            INCOMPLETE_SIGNATURE,
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            "[local emulator: only X-Amz-Date is read, which boto3 and the enclave send]",
        )
    try:
        signed = datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise RecipientRefused(
            INCOMPLETE_SIGNATURE, f"X-Amz-Date {value[:40]!r} is not {AMZ_DATE_FORMAT}"
        ) from None
    if signed < when - SIGV4_WINDOW:
        raise RecipientRefused(
            INVALID_SIGNATURE,
            f"Signature expired: {value} is now earlier than {_amz(when - SIGV4_WINDOW)} "
            f"({_amz(when)} - 5 min.)",
        )
    if signed > when + SIGV4_WINDOW:
        raise RecipientRefused(
            INVALID_SIGNATURE,
            f"Signature not yet current: {value} is still later than {_amz(when + SIGV4_WINDOW)} "
            f"({_amz(when)} + 5 min.)",
        )


def _amz(moment: datetime) -> str:
    return moment.strftime(AMZ_DATE_FORMAT)

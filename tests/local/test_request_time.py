"""The emulator's SigV4 time check, which moto lacks: KMS's own answers at and beyond 5 minutes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.local.kms_recipient import RecipientRefused
from app.local.request_time import check_request_time

NOW = datetime(2026, 12, 5, 7, 10, 48, 512_000, tzinfo=UTC)


def _signed(offset: timedelta) -> dict[str, str]:
    return {"X-Amz-Date": (NOW + offset).strftime("%Y%m%dT%H%M%SZ")}


@pytest.mark.parametrize("offset_s", [-300, -1, 0, 1, 300])
def test_a_request_signed_within_five_minutes_passes(offset_s: int) -> None:
    check_request_time(_signed(timedelta(seconds=offset_s)), NOW)


def test_a_request_signed_too_long_ago_has_expired_in_kms_words() -> None:
    with pytest.raises(RecipientRefused) as refused:
        check_request_time({"x-amz-date": "20261205T070547Z"}, NOW)
    assert refused.value.code == "InvalidSignatureException"
    assert refused.value.message == (
        "Signature expired: 20261205T070547Z is now earlier than 20261205T070548Z (20261205T071048Z - 5 min.)"
    )


def test_a_request_signed_in_the_future_is_not_yet_current_in_kms_words() -> None:
    with pytest.raises(RecipientRefused) as refused:
        check_request_time(_signed(timedelta(seconds=301)), NOW)
    assert refused.value.code == "InvalidSignatureException"
    assert refused.value.message == (
        "Signature not yet current: 20261205T071549Z is still later than 20261205T071548Z "
        "(20261205T071048Z + 5 min.)"
    )


@pytest.mark.parametrize("headers", [{}, {"X-Amz-Date": "yesterday"}])
def test_a_request_without_a_readable_date_is_incomplete(headers: dict[str, str]) -> None:
    with pytest.raises(RecipientRefused) as refused:
        check_request_time(headers, NOW)
    assert refused.value.code == "IncompleteSignatureException"

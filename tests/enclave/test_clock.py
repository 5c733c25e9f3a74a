"""The enclave's clock against the NSM's signed time: measured at each document, corrected beyond 2 s.

A software NSM with its own clock stands in for the real one; the enclave's clock is a fixed value, so no
assertion depends on how long anything takes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.enclave.clock import CORRECTION_THRESHOLD_S, EnclaveClock
from app.local.software_nsm import SoftwareNsm
from tests.attestation_helpers import local_pki

NSM_TIME = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)
PCR0 = bytes(range(48))


def _nsm(at: datetime = NSM_TIME) -> SoftwareNsm:
    return SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: at)


def _enclave_clock(skew_s: float, **kwargs: float) -> EnclaveClock:
    """An enclave whose own clock reads NSM_TIME + skew_s."""
    return EnclaveClock(wall=lambda: NSM_TIME.timestamp() + skew_s, **kwargs)


@pytest.mark.parametrize("skew_s", [400.0, -400.0, 2.5])
def test_a_clock_off_by_more_than_the_threshold_signs_with_the_nsm_time(skew_s: float) -> None:
    clock = _enclave_clock(skew_s)
    clock.attest(_nsm(), public_key=b"k")
    assert clock.reading is not None
    assert (clock.reading.skew_ms, clock.reading.corrected) == (round(skew_s * 1000), True)
    assert clock.now() == NSM_TIME.timestamp()


def test_a_clock_within_the_threshold_is_used_as_it_is() -> None:
    skew_s = CORRECTION_THRESHOLD_S - 0.5
    clock = _enclave_clock(skew_s)
    clock.attest(_nsm(), user_data=b"u")
    assert clock.reading is not None
    assert (clock.reading.skew_ms, clock.reading.corrected) == (1500, False)
    assert clock.now() == NSM_TIME.timestamp() + skew_s


def test_before_any_document_the_own_clock_is_used_and_the_ping_says_so() -> None:
    clock = _enclave_clock(400.0)
    assert clock.now() == NSM_TIME.timestamp() + 400.0
    assert clock.ping_fields() == {"clock_skew_ms": None, "clock_corrected": False}


def test_every_document_measures_again() -> None:
    clock = _enclave_clock(0.0)
    clock.attest(_nsm(NSM_TIME - timedelta(seconds=30)))
    assert clock.ping_fields() == {"clock_skew_ms": 30_000, "clock_corrected": True}
    clock.attest(_nsm(NSM_TIME))
    assert clock.ping_fields() == {"clock_skew_ms": 0, "clock_corrected": False}
    assert clock.now() == NSM_TIME.timestamp()


def test_an_unreadable_document_leaves_the_last_reading() -> None:
    clock = _enclave_clock(-10.0)
    clock.attest(_nsm())
    assert clock.observe(b"not a document", at=NSM_TIME.timestamp()) is None
    assert clock.ping_fields() == {"clock_skew_ms": -10_000, "clock_corrected": True}


def test_the_reading_describes_itself_for_error_messages() -> None:
    clock = _enclave_clock(-400.0)
    clock.attest(_nsm())
    assert clock.reading is not None
    assert clock.reading.describe() == "the enclave's clock is 400.000 s behind the NSM's (corrected)"

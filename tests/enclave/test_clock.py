"""The enclave's clock against the NSM's signed time: measured at each document, corrected beyond 2 s.

A software NSM with its own clock stands in for the real one; the enclave's clock is a fixed value, so no
assertion depends on how long anything takes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.enclave.clock import CORRECTION_THRESHOLD_S, MAX_ROUND_TRIP_S, EnclaveClock
from app.enclave.nsm import NsmDevice, Stamp, TimedDocument
from app.local.software_nsm import SoftwareNsm
from tests.attestation_helpers import local_pki
from tests.enclave.test_nsm import FakeDriver

NSM_TIME = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)
PCR0 = bytes(range(48))


def _nsm(at: datetime = NSM_TIME) -> SoftwareNsm:
    return SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: at)


def _enclave_clock(skew_s: float, **kwargs: float) -> EnclaveClock:
    """An enclave whose own clock reads NSM_TIME + skew_s, and whose monotonic clock stands still."""
    return EnclaveClock(wall=lambda: NSM_TIME.timestamp() + skew_s, monotonic=lambda: 100.0, **kwargs)


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
    assert clock.observe(b"not a document", at=NSM_TIME.timestamp(), monotonic_at=100.0) is None
    assert clock.ping_fields() == {"clock_skew_ms": -10_000, "clock_corrected": True}


def test_the_reading_describes_itself_for_error_messages() -> None:
    clock = _enclave_clock(-400.0)
    clock.attest(_nsm())
    assert clock.reading is not None
    assert clock.reading.describe() == "the enclave's clock is 400.000 s behind the NSM's (corrected)"


class SteppedTime:
    """The enclave's two clocks, moved by hand: `wall` can be stepped, `monotonic` only advances."""

    def __init__(self, wall: float) -> None:
        self.wall = wall
        self.monotonic = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.monotonic += seconds

    def clock(self) -> EnclaveClock:
        return EnclaveClock(wall=lambda: self.wall, monotonic=lambda: self.monotonic)


def test_a_wall_clock_step_after_the_document_does_not_move_the_signing_time() -> None:
    # The enclave's clock is 400 s ahead at the document, then set right: the signing time follows the
    # NSM's time on the monotonic clock, not the wall clock minus a stale offset.
    time = SteppedTime(NSM_TIME.timestamp() + 400)
    clock = time.clock()
    clock.attest(_nsm(), public_key=b"k")
    time.advance(10)
    time.wall = NSM_TIME.timestamp() + 10  # stepped right
    assert clock.now() == NSM_TIME.timestamp() + 10


def test_a_sample_with_a_slow_round_trip_is_dropped_and_the_previous_reading_stands() -> None:
    time = SteppedTime(NSM_TIME.timestamp() + 30)
    clock = time.clock()
    clock.attest(_nsm(), public_key=b"k")
    assert clock.ping_fields() == {"clock_skew_ms": 30_000, "clock_corrected": True}

    class SlowNsm:
        """Takes longer than MAX_ROUND_TRIP_S between the stamps."""

        def attest_timed(self, stamp: Callable[[], Stamp], **request: Any) -> TimedDocument:
            sent = stamp()
            time.advance(MAX_ROUND_TRIP_S + 0.5)
            document = _nsm(NSM_TIME + timedelta(seconds=60)).attest(**request)
            return TimedDocument(document, sent, stamp())

    clock.attest(SlowNsm(), public_key=b"k")  # type: ignore[arg-type]
    assert clock.last_round_trip_s == MAX_ROUND_TRIP_S + 0.5
    assert clock.ping_fields() == {"clock_skew_ms": 30_000, "clock_corrected": True}


def test_waiting_behind_another_caller_of_the_device_does_not_skew_the_measurement(tmp_path: Path) -> None:
    # The parent's `attest` holds the device while the enclave's key renewal waits for it; the parent's
    # request takes 20 s of the stand-in time. The true skew is 0, and the measurement must say so.
    time = SteppedTime(NSM_TIME.timestamp())
    renewal_read_its_clock = threading.Event()

    def wall() -> float:
        renewal_read_its_clock.set()  # the old form reads its clock here, before waiting for the device
        return time.wall

    clock = EnclaveClock(wall=wall, monotonic=lambda: time.monotonic)
    software = SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: datetime.fromtimestamp(time.wall, UTC))
    parent_inside = threading.Event()

    def driver(request: dict[str, Any]) -> Any:
        if request["Attestation"]["nonce"] is not None:  # the parent's request
            parent_inside.set()
            renewal_read_its_clock.wait(0.5)  # the renewal is queued now (new form: it reads nothing yet)
            time.advance(20)
        return {"Attestation": {"document": software.attest()}}

    path = tmp_path / "nsm"
    path.write_bytes(b"")
    with NsmDevice(str(path), ioctl=FakeDriver(driver)) as device:
        parent = threading.Thread(target=device.attest, kwargs={"nonce": b"n"})
        parent.start()
        assert parent_inside.wait(5)
        clock.attest(device, public_key=b"k")
        parent.join(5)
    assert clock.ping_fields() == {"clock_skew_ms": 0, "clock_corrected": False}

"""The enclave's time for signing: its own clock, or the NSM's signed time carried forward when they differ.

An enclave's clock can be minutes off (docs/programs.md, "The enclave's clock"), and SigV4 refuses a request
signed more than 5 minutes off. Every attestation document carries the NSM's time (`timestamp`, ms).
`attest` asks the NSM for a document, stamping our monotonic and wall clocks right before and after the
device's own work (inside its lock, so no wait for another caller counts), and compares the timestamp with
the midpoint. A sample whose round trip exceeds `MAX_ROUND_TRIP_S` is dropped and the previous reading
stands (as NTP discards its slow samples). Beyond `CORRECTION_THRESHOLD_S`, `now` is the NSM's time plus
the monotonic time elapsed since, so a step of the wall clock after the document changes nothing until the
next document measures again. The document is the enclave's own, straight from its NSM, so it is parsed,
not verified. No logging here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.enclave.nsm import SecureModule, Stamp, TimedDocument
from app.shared.attestation import AttestationError, parse_document

CORRECTION_THRESHOLD_S = 2.0  # below this the enclave's own clock is used as it is
MAX_ROUND_TRIP_S = 1.0  # a slower NSM answer is too vague to measure by (its error is up to half of it)


@dataclass(frozen=True)
class ClockReading:
    """What the last usable document showed: `skew_ms` is the enclave's clock minus the NSM's (positive:
    ahead); `nsm_s` the NSM's time and `monotonic_s` our monotonic clock at the same moment."""

    skew_ms: int
    corrected: bool
    nsm_s: float
    monotonic_s: float

    def describe(self) -> str:
        way = "ahead of" if self.skew_ms >= 0 else "behind"
        applied = "corrected" if self.corrected else "not corrected"
        return f"the enclave's clock is {abs(self.skew_ms) / 1000:.3f} s {way} the NSM's ({applied})"


class EnclaveClock:
    """Thread-safe: a reading is replaced whole, and `now` reads it once."""

    def __init__(
        self, *, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
        threshold_s: float = CORRECTION_THRESHOLD_S, max_round_trip_s: float = MAX_ROUND_TRIP_S,
    ) -> None:  # fmt: skip
        self._wall = wall
        self._monotonic = monotonic
        self._threshold_ms = threshold_s * 1000
        self._max_round_trip_s = max_round_trip_s
        self._reading: ClockReading | None = None
        self._last_round_trip_s: float | None = None

    @property
    def reading(self) -> ClockReading | None:
        """None until a document has been read."""
        return self._reading

    @property
    def last_round_trip_s(self) -> float | None:
        """How long the last NSM call took between its stamps (None before the first)."""
        return self._last_round_trip_s

    def now(self) -> float:
        """Seconds since the epoch to sign with: the NSM's time carried forward on the monotonic clock when
        a correction applies, else our wall clock."""
        reading = self._reading
        if reading is not None and reading.corrected:
            return reading.nsm_s + (self._monotonic() - reading.monotonic_s)
        return self._wall()

    def stamp(self) -> Stamp:
        return Stamp(self._monotonic(), self._wall())

    def attest(self, nsm: SecureModule, **request: Any) -> bytes:
        """`nsm.attest(**request)`, reading the clock from the document it returns."""
        timed = nsm.attest_timed(self.stamp, **request)
        self.observe_timed(timed)
        return timed.document

    def observe_timed(self, timed: TimedDocument) -> ClockReading | None:
        """Read the clock from a document stamped by `attest_timed`; None (the previous reading stands)
        when its round trip is over the limit or it is unreadable."""
        round_trip_s = timed.answered.monotonic - timed.sent.monotonic
        self._last_round_trip_s = round_trip_s
        if not 0 <= round_trip_s <= self._max_round_trip_s:
            return None
        return self.observe(
            timed.document,
            at=(timed.sent.wall + timed.answered.wall) / 2,
            monotonic_at=(timed.sent.monotonic + timed.answered.monotonic) / 2,
        )

    def observe(self, document: bytes, *, at: float, monotonic_at: float) -> ClockReading | None:
        """Compare the document's timestamp with `at` (our wall clock when it was made; `monotonic_at` our
        monotonic clock then); None if unreadable, and then the previous reading stands."""
        try:
            nsm_ms = parse_document(document).timestamp.timestamp() * 1000
        except AttestationError:
            return None
        skew_ms = round(at * 1000 - nsm_ms)
        self._reading = ClockReading(skew_ms, abs(skew_ms) > self._threshold_ms, nsm_ms / 1000, monotonic_at)
        return self._reading

    def ping_fields(self) -> dict[str, Any]:
        """The ping answer's clock fields (`clock_skew_ms` is null before the first document)."""
        reading = self._reading
        if reading is None:
            return {"clock_skew_ms": None, "clock_corrected": False}
        return {"clock_skew_ms": reading.skew_ms, "clock_corrected": reading.corrected}

"""The enclave's time for signing: its own clock, corrected by the NSM's signed timestamp when they differ.

Nothing sets an enclave's clock after boot, and SigV4 refuses a request signed more than 5 minutes off.
Every attestation document carries the NSM's time (`timestamp`, ms). `attest` asks the NSM for a document
and compares that timestamp with this clock (the midpoint of the call); beyond `CORRECTION_THRESHOLD_S` the
difference is taken off every later signing time (`now`), until the next document measures it again. The
document is the enclave's own, straight from its NSM, so it is parsed, not verified. No logging here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.enclave.nsm import SecureModule
from app.shared.attestation import AttestationError, parse_document

CORRECTION_THRESHOLD_S = 2.0  # below this the enclave's own clock is used as it is


@dataclass(frozen=True)
class ClockReading:
    """What the last document showed: `skew_ms` is the enclave's clock minus the NSM's (positive: ahead)."""

    skew_ms: int
    corrected: bool

    def describe(self) -> str:
        way = "ahead of" if self.skew_ms >= 0 else "behind"
        applied = "corrected" if self.corrected else "not corrected"
        return f"the enclave's clock is {abs(self.skew_ms) / 1000:.3f} s {way} the NSM's ({applied})"


class EnclaveClock:
    """Thread-safe: a reading is replaced whole, and `now` reads it once."""

    def __init__(
        self, *, wall: Callable[[], float] = time.time, threshold_s: float = CORRECTION_THRESHOLD_S
    ) -> None:
        self._wall = wall
        self._threshold_ms = threshold_s * 1000
        self._reading: ClockReading | None = None

    @property
    def reading(self) -> ClockReading | None:
        """None until a document has been read."""
        return self._reading

    def now(self) -> float:
        """Seconds since the epoch to sign with: the NSM's time when a correction applies, else ours."""
        reading = self._reading
        offset_s = reading.skew_ms / 1000 if reading is not None and reading.corrected else 0.0
        return self._wall() - offset_s

    def attest(self, nsm: SecureModule, **request: Any) -> bytes:
        """`nsm.attest(**request)`, reading the clock from the document it returns."""
        sent = self._wall()
        document = nsm.attest(**request)
        self.observe(document, at=(sent + self._wall()) / 2)
        return document

    def observe(self, document: bytes, *, at: float) -> ClockReading | None:
        """Compare the document's timestamp with `at` (our clock when it was made); None if unreadable,
        and then the previous reading stands."""
        try:
            nsm_ms = parse_document(document).timestamp.timestamp() * 1000
        except AttestationError:
            return None
        skew_ms = round(at * 1000 - nsm_ms)
        self._reading = ClockReading(skew_ms, abs(skew_ms) > self._threshold_ms)
        return self._reading

    def ping_fields(self) -> dict[str, Any]:
        """The ping answer's clock fields (`clock_skew_ms` is null before the first document)."""
        reading = self._reading
        if reading is None:
            return {"clock_skew_ms": None, "clock_corrected": False}
        return {"clock_skew_ms": reading.skew_ms, "clock_corrected": reading.corrected}

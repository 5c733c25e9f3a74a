"""The load step's figures, read from the rehearsed host's journals: every card's fate as the relay logged
it (one JSON line per card, `app.parent.relay`), and how often vsock-proxy had every worker busy (the
stand-in says so on stderr). A card retried (`kms_unavailable` is blocker 3's symptom: a connection accepted
and never served until boto3's read timeout), received more than once, or not ok fails the rehearsal. A busy
proxy alone does not: a connection that waits a moment while another is being torn down is served in time.
Every start of the relay must follow a passing canary in the relay unit's own journal (its ExecStartPre):
a start without one fails the rehearsal too.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

RELAY_UNIT = "nitro-enclave-demo-relay"
PROXY_UNIT = "nitro-enclaves-vsock-proxy"
PROXY_BUSY = "workers busy"
KMS_UNAVAILABLE = "kms_unavailable"
ACCESS_DENIED = "access_denied"  # KMS refused the enclave's attested Decrypt: the pin does not accept it
CANARY_OK = "canary ok: "  # app.parent.canary's line, printed by the relay unit's ExecStartPre
RELAY_STARTED = "relay started"  # app.parent.relay.STARTED_LINE, the relay's first line


@dataclass(frozen=True)
class Figures:
    processed: int
    ok: int
    retried: int
    kms_unavailable: int
    redelivered: int
    proxy_waits: int
    enclave_ms: tuple[float, ...]
    access_denied: int = 0
    unproven_starts: int = 0  # relay starts with no passing canary before them in the unit's journal

    def problems(self) -> list[str]:
        found = []
        if self.unproven_starts:
            found.append(
                f"the relay started {self.unproven_starts} time(s) with no passing canary before it in its "
                "unit's journal (ExecStartPre)"
            )
        if self.kms_unavailable:
            found.append(
                f"{self.kms_unavailable} KMS call(s) timed out or failed (kms_unavailable); vsock-proxy had "
                f"every worker busy {self.proxy_waits} time(s)"
            )
        if self.redelivered or self.retried:
            found.append(f"{self.retried} retried, {self.redelivered} received more than once")
        if self.access_denied:
            found.append(
                f"{self.access_denied} card(s) rejected with access_denied: the key policy refused the image"
            )
        if self.ok != self.processed:
            found.append(f"only {self.ok} of {self.processed} processed cards were ok")
        return found

    def summary(self) -> str:
        times = sorted(self.enclave_ms) or [0.0]
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        return (
            f"relay: {self.processed} cards processed, {self.ok} ok, {self.retried} retried, "
            f"{self.kms_unavailable} kms_unavailable, {self.access_denied} access_denied, "
            f"{self.redelivered} redelivered; enclave time "
            f"median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms, max {times[-1]:.0f} ms; "
            f"vsock-proxy all-workers-busy waits: {self.proxy_waits}"
        )


def from_journals(relay_journal: str, proxy_journal: str) -> Figures:
    """Figures from `journalctl -o cat` of the relay and vsock-proxy units."""
    fates = [_json(line) for line in relay_journal.splitlines()]
    cards = [f for f in fates if f.get("logger") == "app.parent.relay" and f.get("card_id")]
    processed = [c for c in cards if c.get("status") in ("ok", "rejected")]
    return Figures(
        processed=len(processed),
        ok=sum(1 for c in processed if c.get("status") == "ok"),
        retried=sum(1 for c in cards if c.get("status") == "retry"),
        kms_unavailable=sum(1 for c in cards if c.get("code") == KMS_UNAVAILABLE),
        redelivered=sum(1 for c in processed if int(c.get("receive_count") or 1) > 1),
        proxy_waits=sum(1 for line in proxy_journal.splitlines() if PROXY_BUSY in line),
        enclave_ms=tuple(float(c["enclave_ms"]) for c in processed if c.get("enclave_ms") is not None),
        access_denied=sum(1 for c in processed if c.get("code") == ACCESS_DENIED),
        unproven_starts=unproven_starts(relay_journal),
    )


def unproven_starts(relay_journal: str) -> int:
    """How many `relay started` lines have no `canary ok:` line since the previous start."""
    proven, unproven = False, 0
    for line in relay_journal.splitlines():
        if line.startswith(CANARY_OK):
            proven = True
        elif _json(line).get("msg") == RELAY_STARTED:
            unproven += not proven
            proven = False
    return unproven


def _json(line: str) -> dict[str, Any]:
    try:
        parsed = json.loads(line)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}

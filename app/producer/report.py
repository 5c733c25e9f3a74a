"""What the producer prints: one line per result and a summary. Only masked numbers (`cards.mask`)."""

from __future__ import annotations

from app.shared.cards import mask

from .waiter import CardOutcome, Collected


def outcome_line(outcome: CardOutcome) -> str:
    """`************1111  ok        142 ms  card_id=...`, with the reason appended when rejected."""
    shown = mask(outcome.sent.last4, outcome.sent.length)
    result = outcome.result
    line = f"{shown:>19}  {{:<8}}  {outcome.latency_ms:7.0f} ms  card_id={outcome.sent.card_id}"
    if outcome.matches:
        return line.format("ok")
    if result.status == "ok":
        return line.format("MISMATCH") + f"  enclave answered {mask(result.last4 or '0000')}"
    return line.format("rejected") + f"  {result.error_code}: {result.error_message}"


def summary_line(collected: Collected, sent_count: int, started_monotonic: float) -> str:
    """`10/10 ok, 0 rejected, 0 missing in 1.23 s: 8.1 cards/s`."""
    ok = sum(1 for o in collected.outcomes if o.matches)
    elapsed = max(collected.finished_monotonic - started_monotonic, 1e-9)
    rate = len(collected.outcomes) / elapsed
    return (
        f"{ok}/{sent_count} ok, {len(collected.outcomes) - ok} rejected or wrong, "
        f"{len(collected.missing)} missing in {elapsed:.2f} s: {rate:.1f} cards/s"
    )


def all_matched(collected: Collected, sent_count: int) -> bool:
    return (
        not collected.missing
        and len(collected.outcomes) == sent_count
        and all(o.matches for o in collected.outcomes)
    )

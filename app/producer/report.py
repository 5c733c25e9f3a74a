"""What the producer prints: one line per result and a summary. Only masked numbers (`cards.mask`); a
result's own text (error message) is scrubbed of number-like runs, since anyone may post a result."""

from __future__ import annotations

import re

from app.shared.cards import mask, scrub_card_numbers

from .waiter import CardOutcome, Collected

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """ASCII only, every other character and every control character as a backslash escape: a result's
    text comes from anyone who can post one (a lone surrogate cannot be printed; an escape could drive
    the terminal)."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", escaped)


def outcome_line(outcome: CardOutcome) -> str:
    """`************1111  ok        142 ms  verified    card_id=...`, with the reason appended when rejected
    and why not when UNVERIFIED."""
    shown = mask(outcome.sent.last4, outcome.sent.length)
    result = outcome.result
    verdict = "" if outcome.verdict is None else f"{outcome.verdict.label:<10}  "
    line = f"{shown:>19}  {{:<8}}  {outcome.latency_ms:7.0f} ms  {verdict}card_id={outcome.sent.card_id}"
    why_not = "" if outcome.verdict is None or outcome.verified else f"  ({outcome.verdict.reason})"
    if outcome.matches:
        text = line.format("ok")
    elif result.status == "ok":
        last4 = result.last4 if isinstance(result.last4, str) and len(result.last4) == 4 else "0000"
        text = line.format("MISMATCH") + f"  answered {mask(last4) if last4.isdigit() else '?'}"
    else:
        text = line.format("rejected") + f"  {result.error_code}: {result.error_message}"
    return printable(scrub_card_numbers(text + why_not))


def summary_line(collected: Collected, sent_count: int, started_monotonic: float) -> str:
    """`10/10 ok, 0 rejected, 0 missing in 1.23 s: 8.1 cards/s; 10 verified, 0 UNVERIFIED`."""
    ok = sum(1 for o in collected.outcomes if o.matches)
    elapsed = max(collected.finished_monotonic - started_monotonic, 1e-9)
    rate = len(collected.outcomes) / elapsed
    line = (
        f"{ok}/{sent_count} ok, {len(collected.outcomes) - ok} rejected or wrong, "
        f"{len(collected.missing)} missing in {elapsed:.2f} s: {rate:.1f} cards/s"
    )
    checked = [o for o in collected.outcomes if o.verdict is not None]
    if not checked:
        return line
    verified = sum(1 for o in checked if o.verified)
    seen = collected.unverified_seen
    return (
        line
        + f"; {verified} verified, {len(checked) - verified} UNVERIFIED"
        + (f"; {seen} unverified results seen" if seen else "")
    )


def all_matched(collected: Collected, sent_count: int) -> bool:
    """Every card back, ok, with its own last four, and verified wherever a verdict was given."""
    return (
        not collected.missing
        and len(collected.outcomes) == sent_count
        and all(o.matches and (o.verdict is None or o.verified) for o in collected.outcomes)
    )

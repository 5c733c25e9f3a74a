"""`python -m app.producer verify`'s per-line loop: hostile lines are verdicts, never a crash."""

from __future__ import annotations

import json

from app.producer.verification import verify_lines
from app.shared.queue_messages import ResultMessage
from tests.result_signing import SigningEnclave

ENCLAVE = SigningEnclave()


def test_hostile_lines_are_unverified_and_printable_and_the_next_line_still_verifies() -> None:
    genuine = ENCLAVE.sign(ResultMessage("card-a", "m-1", "ok", last4="1111")).to_json()
    lines = [
        '{"version":1,"card_id":[1],"message_id":"m","status":"ok"}',
        '{"version":1,"card_id":"\\ud800","message_id":"\\udfff","status":"ok"}',
        '{"version":1,"card_id":"x\\u001b[2J","message_id":"m","status":"ok"}',
        json.dumps({"version": 1, "card_id": "c", "message_id": "m", "status": "ok", "proof": {"v": 2}}),
        genuine,
    ]
    verdicts = list(verify_lines(ENCLAVE.verifier(), lines))
    assert [verified for verified, _ in verdicts] == [False, False, False, False, True]
    for _, text in verdicts:
        text.encode("ascii")  # would raise on a lone surrogate or any non-ASCII character
        assert "\x1b" not in text
    assert "\\ud800" in verdicts[1][1]
    assert "not a string or null" in verdicts[0][1]

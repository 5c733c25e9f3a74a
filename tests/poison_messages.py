"""The malformed SQS bodies of issue 12, one catalogue for the relay's tests and the pipeline's: each must be
rejected on its own, as `malformed_message`, while the nine valid cards of its batch are settled."""

from __future__ import annotations

import json


def _card(**fields: object) -> str:
    return json.dumps({"version": 1, "card_id": "poison-1", "ciphertext": "AAAA", **fields})


POISON = {
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "non-ASCII base64": _card(ciphertext="AAAA€AAA"),
    "version true": _card(version=True),
    "version 1.0": _card(version=1.0),
    "card_id with newline": _card(card_id="poison-1\n"),
    "240 KB version": _card(version="v" * 240_000),
    "1 MiB body": _card(version="v" * (1_048_576 - 100)),  # SQS's largest message
}

"""The body the relay parks on the dead-letter queue for a rejected card: never a raw body holding a number.

A body that reads as a card message is parked re-encoded (`CardMessage.to_json`): its card id passed
`check_card_id`, its ciphertext is base64, and nothing else of the original travels (a redrive reads the
same card). A body that does not (malformed, or its card id refused) may hold a card number in any form.
It is scanned after JSON `\\uXXXX` escapes are decoded (`\\t`-style ones become a space) and NFKC
normalisation (full-width digits become ASCII), for 12 or more Unicode digits (`\\d`: Arabic-Indic and the
like) with any non-alphanumeric characters between them. With no such run it is parked as it came; with
one, the normalised text is parked with every run cut to `****` and its last four digits (not the
original any more; the relay could not read it anyway). Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

from app.shared.cards import LAST_DIGITS_SHOWN, MIN_CARD_DIGITS
from app.shared.queue_messages import CardMessage, MalformedMessage

_JSON_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_SHORT_ESCAPE = re.compile(r"\\[tnrbf]")  # JSON's letter escapes: a letter would end a digit run
# Unicode digits, any run of non-alphanumeric characters (or `_`) between two of them.
WIDE_CARD_NUMBER_RUN = re.compile(rf"\d(?:[\W_]*\d){{{MIN_CARD_DIGITS - 1},}}")


def dead_letter_body(body: str) -> str:
    """What to park for `body` (see the module docstring)."""
    try:
        return CardMessage.from_json(body).to_json()
    except MalformedMessage:
        scrubbed = scrub_wide(body)
        return body if scrubbed == _normalised(body) else scrubbed  # unchanged when nothing was cut


def scrub_wide(text: str) -> str:
    """`text`, normalised and unescaped, with every wide digit run cut to `****` + its last four digits."""
    return WIDE_CARD_NUMBER_RUN.sub(
        lambda run: "****" + _digits(run.group())[-LAST_DIGITS_SHOWN:], _normalised(text)
    )


def _normalised(text: str) -> str:
    unescaped = _SHORT_ESCAPE.sub(" ", _JSON_ESCAPE.sub(lambda match: _char(int(match.group(1), 16)), text))
    return unicodedata.normalize("NFKC", unescaped)


def _char(code: int) -> str:
    return "\ufffd" if 0xD800 <= code <= 0xDFFF else chr(code)  # a lone surrogate cannot be sent


def _digits(text: str) -> str:
    return "".join(str(unicodedata.digit(char)) for char in text if char.isdecimal())

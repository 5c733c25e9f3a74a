"""The tests' own search for leaked card numbers: wider than the product's rules on purpose (it does not
use `app.shared.cards`), so a form the product forgets is still caught.

Text is JSON-unescaped (`\\uXXXX`, and `\\t`-style escapes become a space) and NFKC-normalised; every
Unicode decimal digit counts as its ASCII digit; a letter ends a run; every other character (spaces,
punctuation, `+`, `|`, `,`, tabs, quotes, backslashes) is dropped. A number is found when its digits
appear consecutively in what is left.
"""

from __future__ import annotations

import re
import unicodedata

_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_SHORT_ESCAPE = re.compile(r"\\[tnrbf]")


def digit_runs(text: str) -> str:
    """`text` reduced to its digit runs, separated by `|` where a letter stood."""
    text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = unicodedata.normalize("NFKC", _SHORT_ESCAPE.sub(" ", text))
    kept = []
    for char in text:
        if char.isdecimal():
            kept.append(str(unicodedata.digit(char)))
        elif char.isalpha():
            kept.append("|")
    return "".join(kept)


def leaked(numbers: list[str] | tuple[str, ...], text: str) -> list[str]:
    """The numbers (shown by their last four only) whose full digits appear in `text` in any form."""
    runs = digit_runs(text)
    return [f"...{number[-4:]}" for number in numbers if number in runs]

"""Card-number rules shared by every program: validation, Luhn, masking, and finding numbers in text.

Nothing here logs or raises with a full number in it: errors name the rule that failed, never the value.
"""

from __future__ import annotations

import re

MIN_CARD_DIGITS = 12
MAX_CARD_DIGITS = 19
LAST_DIGITS_SHOWN = 4
# What may sit between the digits of a number written by hand: "4111 1111 1111 1111", "4111-1111-...",
# "4111.1111...", "4111:1111...", "4111_1111...", "4111/1111...". Any grouping, any count of them.
NUMBER_SEPARATORS = r"[\s._:/-]"
# A run of MIN_CARD_DIGITS or more digits, separators allowed between any two. No Luhn check and no upper
# bound: a run with a wrong check digit is still most of a real number, and a longer run holds one.
CARD_NUMBER_RUN = re.compile(rf"[0-9](?:{NUMBER_SEPARATORS}*[0-9]){{{MIN_CARD_DIGITS - 1},}}")


class NotACardNumber(ValueError):
    """The plaintext is not a plausible card number (the message says which rule failed, not the value)."""


def luhn_ok(digits: str) -> bool:
    """True when the Luhn check digit is right (ISO/IEC 7812-1)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def validate_card_number(candidate: str) -> str:
    """Return the number if it is 12-19 ASCII digits with a valid Luhn digit; raise NotACardNumber if not."""
    if not (candidate.isascii() and candidate.isdigit()):
        raise NotACardNumber("not digits only")
    if not MIN_CARD_DIGITS <= len(candidate) <= MAX_CARD_DIGITS:
        raise NotACardNumber(f"length {len(candidate)} outside {MIN_CARD_DIGITS}-{MAX_CARD_DIGITS} digits")
    if not luhn_ok(candidate):
        raise NotACardNumber("Luhn check failed")
    return candidate


def last_four(card_number: str) -> str:
    """The only part of a number that may leave the enclave."""
    return validate_card_number(card_number)[-LAST_DIGITS_SHOWN:]


def contains_card_number(text: str) -> bool:
    """True when `text` holds a run of 12 or more digits, in any grouping (`CARD_NUMBER_RUN`)."""
    return CARD_NUMBER_RUN.search(text) is not None


def scrub_card_numbers(text: str) -> str:
    """`text` with every such run cut to its last four digits: `id:4111-1111-1111-1111` -> `id:****1111`."""
    return CARD_NUMBER_RUN.sub(lambda run: "****" + _digits(run.group())[-LAST_DIGITS_SHOWN:], text)


def _digits(text: str) -> str:
    return "".join(char for char in text if char in "0123456789")


def mask(last4: str, length: int = 16) -> str:
    """How people see a processed card: `************1111` (the length is cosmetic)."""
    if len(last4) != LAST_DIGITS_SHOWN or not last4.isdigit():
        raise ValueError("last4 must be four digits")
    return "*" * max(length - LAST_DIGITS_SHOWN, 0) + last4

"""Reads the file of test card numbers (one per line, `#` comments) and validates every entry.

Errors name the line, never the number on it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from app.shared.cards import NotACardNumber, validate_card_number

SHIPPED_CARDS_FILE = "cards.txt"


class CardFileError(ValueError):
    """The card file is missing, empty or holds a line that is not a valid card number."""


def parse_cards(text: str, source: str = SHIPPED_CARDS_FILE) -> tuple[str, ...]:
    """The numbers in `text`, in file order; raise CardFileError on the first bad line."""
    numbers: list[str] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            numbers.append(validate_card_number(line))
        except NotACardNumber as error:
            raise CardFileError(f"{source} line {line_no}: {error}") from None
    if not numbers:
        raise CardFileError(f"{source} holds no card numbers")
    return tuple(numbers)


def load_cards(path: Path | None = None) -> tuple[str, ...]:
    """The given file's numbers, or the shipped test numbers when `path` is None."""
    if path is None:
        text = resources.files("app.producer").joinpath(SHIPPED_CARDS_FILE).read_text(encoding="utf-8")
        return parse_cards(text)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CardFileError(f"cannot read {path}: {error.strerror}") from None
    return parse_cards(text, str(path))

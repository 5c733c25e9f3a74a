from __future__ import annotations

from pathlib import Path

import pytest

from app.producer.card_file import CardFileError, load_cards, parse_cards
from app.shared.cards import luhn_ok

BRAND_PREFIXES = {
    "visa": ("4",),
    "mastercard": ("51", "52", "53", "54", "55", "2221", "2223"),
    "amex": ("34", "37"),
    "discover": ("6011",),
    "diners": ("30", "36", "38"),
    "jcb": ("35",),
    "unionpay": ("62",),
    "maestro": ("67", "63"),
}


def test_every_shipped_number_passes_luhn() -> None:
    assert all(luhn_ok(number) for number in load_cards())


def test_shipped_numbers_cover_every_brand() -> None:
    numbers = load_cards()
    missing = [
        b for b, prefixes in BRAND_PREFIXES.items() if not any(n.startswith(prefixes) for n in numbers)
    ]
    assert missing == []


def test_shipped_numbers_have_several_lengths() -> None:
    assert {len(n) for n in load_cards()} >= {13, 14, 15, 16, 19}


def test_shipped_numbers_are_unique() -> None:
    numbers = load_cards()
    assert len(set(numbers)) == len(numbers)


def test_comments_and_blank_lines_are_ignored() -> None:
    assert parse_cards("# visa\n\n  4111111111111111  \n# end\n") == ("4111111111111111",)


def test_a_bad_line_is_named_by_line_number_not_value() -> None:
    with pytest.raises(CardFileError, match="line 2: Luhn") as caught:
        parse_cards("4111111111111111\n4111111111111112\n")
    assert "4111111111111112" not in str(caught.value)


def test_a_file_without_numbers_is_refused() -> None:
    with pytest.raises(CardFileError, match="no card numbers"):
        parse_cards("# only a comment\n")


def test_a_missing_file_is_a_card_file_error(tmp_path: Path) -> None:
    with pytest.raises(CardFileError, match="cannot read"):
        load_cards(tmp_path / "absent.txt")


def test_a_given_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "cards.txt"
    path.write_text("5555555555554444\n", encoding="utf-8")
    assert load_cards(path) == ("5555555555554444",)

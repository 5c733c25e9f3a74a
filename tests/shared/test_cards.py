"""Card validation and masking: the rules the enclave applies before anything leaves it."""

from __future__ import annotations

import pytest

from app.shared import cards
from app.shared.cards import NotACardNumber

VISA = "4111111111111111"


@pytest.mark.parametrize(
    "number", [VISA, "378282246310005", "30569309025904", "4222222222222", "5555555555554444"]
)
def test_valid_test_numbers(number: str) -> None:
    assert cards.validate_card_number(number) == number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("4111111111111112", "Luhn"),
        ("41111111111", "length 11"),
        ("41111111111111111111", "length 20"),
        ("4111-1111-1111-1111", "digits only"),
        ("\uff14" * 16, "digits only"),  # fullwidth digits are not ASCII digits
    ],
)
def test_invalid_numbers_name_the_rule_not_the_value(number: str, reason: str) -> None:
    with pytest.raises(NotACardNumber, match=reason) as caught:
        cards.validate_card_number(number)
    assert number not in str(caught.value)


def test_last_four() -> None:
    assert cards.last_four(VISA) == "1111"


def test_mask_shows_only_four_digits() -> None:
    assert cards.mask("1111") == "************1111"
    with pytest.raises(ValueError, match="four digits"):
        cards.mask(VISA)


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111.1111.1111.1111",
        "4111:1111:1111:1111",
        "4111_1111_1111_1111",
        "4111/1111/1111/1111",
        "id:4111111111111111:x",
        "41111111-1111-4111-8111-abcdef",  # a UUID's groups are a grouping too
        "4111111111111112",  # a wrong check digit: still most of a real number (no Luhn test)
        "411111111111",  # 12 digits
        "41111111111111111111111",  # longer runs hold a number
    ],
)
def test_a_card_number_in_any_grouping_is_found(text: str) -> None:
    assert cards.contains_card_number(text)
    assert "1111111111" not in cards.scrub_card_numbers(text)


@pytest.mark.parametrize(
    "text", ["41111111111", "order-2024-17", "4111a1111b1111c1111", "2026-12-05T07:02:25.123Z"]
)
def test_shorter_runs_and_runs_broken_by_letters_are_not(text: str) -> None:
    assert not cards.contains_card_number(text)
    assert cards.scrub_card_numbers(text) == text


def test_scrubbing_keeps_the_last_four_only() -> None:
    assert cards.scrub_card_numbers("id:4111-1111-1111-1234:x") == "id:****1234:x"

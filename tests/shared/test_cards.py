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

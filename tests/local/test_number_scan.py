"""The tests' own scan for card numbers (pipeline_helpers.full_numbers_in) finds them in any grouping."""

from __future__ import annotations

import pytest

from .pipeline_helpers import full_numbers_in


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        '"card_id":"4111-1111-1111-1111"',
        "card_id=id:4111111111111111:x",
        "4111 1111 1111 1111",
        "4111.1111.1111.1111",
        "4111_1111_1111_1111",
        "37828224631 0005",
    ],
)
def test_a_test_number_is_found_in_any_grouping(text: str) -> None:
    assert full_numbers_in([], [text]) != []


def test_its_last_four_alone_is_not_a_finding() -> None:
    assert full_numbers_in([], ["card_id=id:****1111:x ************1111"]) == []

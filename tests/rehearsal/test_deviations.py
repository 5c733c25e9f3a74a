"""The deviations a rehearsal prints and the table in docs/rehearsal.md name the same areas, in one order."""

from __future__ import annotations

from infra.constants import REPO_ROOT
from rehearsal import deviations

HEADER = "| area | rehearsal | real |"


def _documented_areas() -> list[str]:
    text = (REPO_ROOT / "docs" / "rehearsal.md").read_text(encoding="utf-8")
    rows = text[text.index(HEADER) :].splitlines()[2:]
    areas = []
    for row in rows:
        if not row.startswith("| "):
            break
        areas.append(row.split("|")[1].strip().strip("`"))
    return areas


def test_the_printed_deviations_and_the_documented_table_name_the_same_areas_in_order() -> None:
    assert [area for area, _ in deviations.DEVIATIONS] == _documented_areas()


def test_every_deviation_says_something() -> None:
    assert all(text.strip() for _, text in deviations.DEVIATIONS)

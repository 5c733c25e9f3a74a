"""`python -m app.local` argument parsing: options in the places people type them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.local.__main__ import parser


@pytest.mark.parametrize(
    "argv",
    [["--run-dir", "d", "serve"], ["serve", "--run-dir", "d"], ["bench", "--run-dir", "d", "--cards", "5"]],
)
def test_run_dir_is_accepted_on_either_side_of_the_subcommand(argv: list[str]) -> None:
    assert parser().parse_args(argv).run_dir == Path("d")


def test_without_run_dir_a_temporary_one_is_used_later() -> None:
    assert parser().parse_args(["demo"]).run_dir is None

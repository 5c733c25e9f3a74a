"""Reading py-spy's folded stacks: which frames the flame graph's summary names, and their shares."""

from __future__ import annotations

from pathlib import Path

from app.local import profiler

FOLDED = "main;decrypt;unwrap 3\nmain;decrypt 1\nmain;serve;serve 2\nnot a sample line\n"


def test_self_time_counts_the_frame_on_top_of_each_sample(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(FOLDED)
    assert profiler.top_self(stacks) == [("unwrap", 50.0), ("serve", 33.3), ("decrypt", 16.7)]


def test_inclusive_time_counts_a_frame_once_per_sample_wherever_it_stands(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(FOLDED)
    assert profiler.top_inclusive(stacks) == [
        ("main", 100.0),
        ("decrypt", 66.7),
        ("unwrap", 50.0),
        ("serve", 33.3),
    ]


def test_an_empty_profile_names_nothing(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text("")
    assert profiler.top_self(stacks) == []

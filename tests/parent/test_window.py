"""The relay's window: a batch takes its slots together or not at all, so pollers never hold parts of it."""

from __future__ import annotations

import threading

import pytest

from app.parent.window import Window


def test_a_batch_takes_all_its_slots_or_none() -> None:
    window = Window(32)
    assert [window.acquire(10, 0) for _ in range(3)] == [10, 10, 10]
    assert window.acquire(10, 0) == 0  # two free: a partial batch would hold them while it waits
    assert window.acquire(2, 0) == 2


def test_five_pollers_of_ten_against_thirty_two_all_get_through() -> None:
    """The hold-and-wait case: 5 x 10 > 32. Each poller sends once it has its batch, then frees it."""
    window = Window(32)
    done: list[int] = []

    def poller() -> None:
        taken = window.acquire(10, 30)
        done.append(taken)
        window.release(taken)

    threads = [threading.Thread(target=poller) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)  # only the fail-safe of a hung test
    assert done == [10] * 5


def test_a_batch_larger_than_the_window_takes_the_whole_window() -> None:
    window = Window(3)
    assert window.acquire(5, 0) == 3
    assert window.acquire(1, 0) == 0


def test_releasing_more_than_was_taken_is_a_bug_we_refuse() -> None:
    window = Window(2)
    window.acquire(1, 0)
    with pytest.raises(ValueError, match="released 2 slots with only 1 taken"):
        window.release(2)
    with pytest.raises(ValueError, match="at least one slot"):
        Window(0)

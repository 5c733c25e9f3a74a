"""Delivery counts of a load run: every card sent comes back exactly once, or the counts say otherwise."""

from __future__ import annotations

from app.local.delivery import Delivery, count


def test_a_clean_run_counts_nothing_wrong() -> None:
    assert count(["a", "b"], ["b", "a"], 0) == Delivery(2, 0, 0, 0, 0)


def test_missing_repeated_and_foreign_results_are_each_counted() -> None:
    delivery = count(["a", "b", "c"], ["a", "a", "a", "b", "zz", None], left_on_queue=2)
    assert (delivery.lost, delivery.duplicates, delivery.unexpected) == (1, 2, 2)
    assert delivery.left_on_cards_queue == 2

"""The c5.xlarge projection from CPU per card: whichever side runs out of CPU first bounds it."""

from __future__ import annotations

from app.local import projection


def test_the_enclave_bounds_when_its_cpu_per_card_is_the_scarcer() -> None:
    estimate = projection.project(2.0, 0.7)
    assert estimate.cards_per_s == 1000.0  # 2 vCPUs / 2 ms
    assert estimate.bound_by == "enclave"
    assert estimate.assumptions()["parent_vcpus_for_relay"] == 1.5


def test_the_relay_bounds_when_it_is_the_scarcer() -> None:
    estimate = projection.project(1.0, 1.5)
    assert estimate.cards_per_s == 1000.0  # 1.5 parent vCPUs / 1.5 ms
    assert estimate.bound_by == "relay"
    assert "1000 cards/s, bound by the relay" in projection.describe(estimate)


def test_no_measured_cpu_is_no_bound_from_that_side() -> None:
    assert projection.project(0.0, 1.5).bound_by == "relay"

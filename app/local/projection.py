"""What a deployed host could sustain, projected from the CPU our processes spend per card here.

KMS and SQS serve far more than one host asks of them, so a host is bound by CPU: the enclave's vCPUs
for the enclave's work, the parent's remaining vCPUs for the relay's. The figures assume the default
stack (a c5.xlarge: 4 vCPUs, 2 of them given to the enclave) and are only as good as the assumption that
CPU per card here (against the emulator, on this machine's cores) is what it is on the instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INSTANCE_TYPE = "c5.xlarge"
INSTANCE_VCPUS = 4
ENCLAVE_VCPUS = 2  # the stack's default enclave_cpu_count (infra/settings.py DEFAULTS)
# The parent's vsock-proxy forwards every KMS byte and the OS, the log sink and the agents need a share:
# we set half a vCPU aside for them (an estimate: none of it was measured on AWS).
PARENT_RESERVED_VCPUS = 0.5


@dataclass(frozen=True)
class Projection:
    enclave_ms_per_card: float
    relay_ms_per_card: float
    enclave_bound_cards_per_s: float
    relay_bound_cards_per_s: float

    @property
    def cards_per_s(self) -> float:
        """The lower of the two bounds: whichever side runs out of CPU first."""
        return round(min(self.enclave_bound_cards_per_s, self.relay_bound_cards_per_s), 1)

    @property
    def bound_by(self) -> str:
        return "enclave" if self.enclave_bound_cards_per_s <= self.relay_bound_cards_per_s else "relay"

    def assumptions(self) -> dict[str, Any]:
        return {
            "instance": INSTANCE_TYPE,
            "enclave_vcpus": ENCLAVE_VCPUS,
            "parent_vcpus_for_relay": INSTANCE_VCPUS - ENCLAVE_VCPUS - PARENT_RESERVED_VCPUS,
            "enclave_bound_cards_per_s": round(self.enclave_bound_cards_per_s, 1),
            "relay_bound_cards_per_s": round(self.relay_bound_cards_per_s, 1),
            "bound_by": self.bound_by,
        }


def _per_second(vcpus: float, ms_per_card: float) -> float:
    return vcpus * 1000 / ms_per_card if ms_per_card > 0 else float("inf")


def project(enclave_ms_per_card: float, relay_ms_per_card: float) -> Projection:
    parent_vcpus = INSTANCE_VCPUS - ENCLAVE_VCPUS - PARENT_RESERVED_VCPUS
    return Projection(
        enclave_ms_per_card,
        relay_ms_per_card,
        _per_second(ENCLAVE_VCPUS, enclave_ms_per_card),
        _per_second(parent_vcpus, relay_ms_per_card),
    )


def describe(estimate: Projection) -> str:
    """The projection and its assumptions, in one line for people."""
    parent_vcpus = INSTANCE_VCPUS - ENCLAVE_VCPUS - PARENT_RESERVED_VCPUS
    return (
        f"projected for a {INSTANCE_TYPE}: {estimate.cards_per_s:g} cards/s, "
        f"bound by the {estimate.bound_by} "
        f"({ENCLAVE_VCPUS} enclave vCPUs / {estimate.enclave_ms_per_card:g} ms = "
        f"{estimate.enclave_bound_cards_per_s:.0f}/s; {parent_vcpus:g} parent vCPUs left after "
        f"{PARENT_RESERVED_VCPUS:g} for the vsock-proxy and the OS / {estimate.relay_ms_per_card:g} ms = "
        f"{estimate.relay_bound_cards_per_s:.0f}/s)"
    )

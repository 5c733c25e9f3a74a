"""Reads the pin out of a key policy: the `kms:RecipientAttestation:ImageSha384` values of each statement
that allows kms:Decrypt. Pure; `python -m app.parent attest` compares the enclave's PCR0 with these.

A statement that allows Decrypt with no ImageSha384 condition is reported as unpinned: it would let its
principals decrypt without any attestation (the mistake of aws-nitro-enclaves-sdk-c#157).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.keypolicy.document import IMAGE_SHA384
from app.keypolicy.grammar import parse_policy

PINNING_OPERATORS = frozenset({"StringEquals", "StringEqualsIgnoreCase"})


@dataclass(frozen=True)
class DecryptGrant:
    statement: str
    image_sha384: tuple[str, ...]  # lowercase; empty: the statement pins no image


def decrypt_grants(policy: Mapping[str, Any]) -> tuple[DecryptGrant, ...]:
    """Every Allow statement of the key policy whose actions include kms:Decrypt, with its pinned images."""
    grants = []
    for statement in parse_policy(policy, resource_policy=True):
        if statement.effect != "Allow" or not statement.matches_action("kms:Decrypt"):
            continue
        values = tuple(
            value.lower()
            for clause in statement.condition
            if clause.operator in PINNING_OPERATORS and clause.key.casefold() == IMAGE_SHA384.casefold()
            for value in clause.values
        )
        grants.append(DecryptGrant(statement.label, values))
    return tuple(grants)

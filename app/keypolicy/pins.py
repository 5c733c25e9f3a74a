"""Reads the pin out of a key policy: the `kms:RecipientAttestation:ImageSha384` values of each statement
that allows kms:Decrypt. Pure, but for `read_key_policy`, which fetches the policy from KMS; `python -m
app.parent attest` and the status document compare the enclave's PCR0 with these.

A statement that allows Decrypt with no ImageSha384 condition is reported as unpinned: it would let its
principals decrypt without any attestation (the mistake of aws-nitro-enclaves-sdk-c#157).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.keypolicy.document import IMAGE_SHA384
from app.keypolicy.grammar import parse_policy

PINNING_OPERATORS = frozenset({"StringEquals", "StringEqualsIgnoreCase"})


def read_key_policy(kms: Any, key_id: str) -> dict[str, Any]:
    """The key's own policy, as KMS holds it: DescribeKey for the ARN (GetKeyPolicy takes no alias), then
    GetKeyPolicy. KMS and JSON errors reach the caller, which says what it could not read."""
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    policy: dict[str, Any] = json.loads(kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"])
    return policy


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

"""Helpers over a synthesized CloudFormation template: find resources by type, evaluate intrinsic functions
like CloudFormation does (rehearsal.cfn, with fixed pseudo parameters and fake ids), and collect IAM
statements. No AWS calls."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rehearsal.cfn import PSEUDO, evaluate, substitute
from rehearsal.keys import card_key as _card_key

__all__ = [
    "PSEUDO",
    "Json",
    "allows",
    "card_key",
    "evaluate",
    "only",
    "resources",
    "statements",
    "substitute",
]

Json = dict[str, Any]


def resources(template: Json, type_name: str) -> dict[str, Json]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_name}


def only(template: Json, type_name: str) -> tuple[str, Json]:
    found = resources(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


def card_key(template: Json) -> tuple[str, Json]:
    """The card key (the one with the attested-Decrypt statement), not the log groups' key."""
    logical_id, key = _card_key(template["Resources"])
    found: Json = key
    return logical_id, found


@dataclass(frozen=True)
class Statement:
    where: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    principal: Any
    condition: Json


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(template: Json) -> Iterator[Statement]:
    """Every policy statement in the template: IAM policies, inline role policies, resource policies."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = [props.get(key) for key in ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument")]
        documents += [p.get("PolicyDocument") for p in props.get("Policies", [])]
        for document in filter(None, documents):
            for raw in _as_list(document["Statement"]):
                yield Statement(
                    where=f"{logical_id} ({resource['Type']})",
                    sid=raw.get("Sid", ""),
                    effect=raw["Effect"],
                    actions=tuple(str(a) for a in _as_list(raw.get("Action", []))),
                    principal=raw.get("Principal"),
                    condition=raw.get("Condition", {}),
                )


def allows(statement: Statement, action: str) -> bool:
    return statement.effect == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in statement.actions
    )

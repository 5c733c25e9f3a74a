"""Parses the policy grammar the evaluator understands, and refuses anything else by name.

Supported: `Version`, `Id`, `Statement` (one or a list) with `Sid`, `Effect` (Allow|Deny), `Principal`
(`"*"` or `{"AWS": ARN | account id | "*" | [...]}`), `Action` or `NotAction`, `Resource` (`"*"`, ARNs,
wildcards) and `Condition`. Anything else (NotPrincipal, NotResource, set operators, unknown operators)
raises `PolicyGrammarError` instead of being evaluated wrongly: real IAM would answer
MalformedPolicyDocumentException for a malformed document, and a silent misreading is worse than a refusal.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.keypolicy.conditions import Condition, UnsupportedCondition, parse_condition
from app.keypolicy.wildcards import wildcard_match

STATEMENT_KEYS = frozenset({"Sid", "Effect", "Principal", "Action", "NotAction", "Resource", "Condition"})
POLICY_KEYS = frozenset({"Version", "Id", "Statement"})


class PolicyGrammarError(ValueError):
    """The document uses something outside the supported grammar; the message names it."""


@dataclass(frozen=True)
class Statement:
    label: str  # the Sid, or "statement #N" (1-based) when it has none
    effect: str  # "Allow" | "Deny"
    principals: tuple[str, ...] | None  # None: not a resource policy statement (identity policy)
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[str, ...]
    condition: Condition

    def matches_action(self, action: str) -> bool:
        """`Action`: any pattern matches; `NotAction`: none does. Action names ignore case."""
        hit = any(wildcard_match(pattern, action, ignore_case=True) for pattern in self.actions)
        return hit != self.not_action

    def matches_resource(self, resource: str) -> bool:
        return any(wildcard_match(pattern, resource, ignore_case=False) for pattern in self.resources)


def parse_policy(document: Mapping[str, Any], *, resource_policy: bool) -> tuple[Statement, ...]:
    """Statements of a key policy (`resource_policy=True`, Principal required) or an identity policy."""
    if not isinstance(document, Mapping):
        raise PolicyGrammarError("a policy is a JSON object")
    unknown = set(document) - POLICY_KEYS
    if unknown:
        raise PolicyGrammarError(f"unsupported policy element(s) {sorted(unknown)}")
    raw = document.get("Statement")
    raws = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else None
    if not raws:
        raise PolicyGrammarError("the policy has no Statement")
    return tuple(_statement(s, i, resource_policy) for i, s in enumerate(raws, start=1))


@functools.lru_cache(maxsize=32)
def parse_policy_text(text: str, *, resource_policy: bool = True) -> tuple[Statement, ...]:
    """`parse_policy` over JSON text (what KMS stores), cached: the emulator evaluates it on every call."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyGrammarError(f"the policy is not JSON: {error}") from None
    return parse_policy(document, resource_policy=resource_policy)


def _statement(raw: Any, index: int, resource_policy: bool) -> Statement:
    if not isinstance(raw, Mapping):
        raise PolicyGrammarError(f"statement #{index} is not an object")
    label = str(raw.get("Sid") or f"statement #{index}")
    unknown = set(raw) - STATEMENT_KEYS
    if unknown:
        raise PolicyGrammarError(f"{label}: unsupported element(s) {sorted(unknown)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyGrammarError(f"{label}: Effect must be Allow or Deny, got {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyGrammarError(f"{label}: exactly one of Action and NotAction")
    not_action = "NotAction" in raw
    return Statement(
        label=label,
        effect=effect,
        principals=_principals(raw, label) if resource_policy else _no_principal(raw, label),
        actions=_strings(raw["NotAction" if not_action else "Action"], label, "Action"),
        not_action=not_action,
        resources=_strings(raw.get("Resource"), label, "Resource"),  # required, as IAM requires it
        condition=_condition(raw.get("Condition", {}), label),
    )


def _principals(raw: Mapping[str, Any], label: str) -> tuple[str, ...]:
    principal = raw.get("Principal")
    if principal == "*":
        return ("*",)
    if not isinstance(principal, Mapping) or not principal:
        raise PolicyGrammarError(f'{label}: a key policy statement needs Principal "*" or {{"AWS": ...}}')
    unknown = set(principal) - {"AWS"}
    if unknown:  # Service, Federated, CanonicalUser: no local caller is one of these
        raise PolicyGrammarError(f"{label}: unsupported principal type(s) {sorted(unknown)}")
    return _strings(principal["AWS"], label, "Principal")


def _no_principal(raw: Mapping[str, Any], label: str) -> tuple[str, ...] | None:
    """Identity policies apply to whoever they are attached to: no Principal element allowed."""
    if "Principal" in raw:
        raise PolicyGrammarError(f"{label}: an identity-based policy has no Principal")
    return None


def _strings(value: Any, label: str, element: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyGrammarError(f"{label}: {element} must be a string or a list of strings, got {value!r}")
    return tuple(values)


def _condition(value: Any, label: str) -> Condition:
    try:
        return parse_condition(value)
    except UnsupportedCondition as error:
        raise PolicyGrammarError(f"{label}: {error}") from None

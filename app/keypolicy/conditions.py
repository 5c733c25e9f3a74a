"""IAM condition operators, as the IAM User Guide states them, over a request context of single values.

Rules (IAM User Guide, "IAM JSON policy elements: Condition operators" and "Creating a condition with
multiple context keys or values"):
- several operators in one `Condition`, and several keys under one operator, must all hold (AND);
- several values for one key: a positive operator holds if the request value matches any of them (OR), a
  negated operator holds if it matches none of them;
- a key absent from the request context makes a positive operator false and a negated one (`StringNot*`)
  true ("condition keys that are not present"); `...IfExists` makes an absent key true; `Null` tests
  presence only (`"true"`: the key must be absent);
- condition key names ignore case; values compare as the operator says (`StringEquals` exact,
  `...IgnoreCase` ignoring case, `StringLike` with `*` and `?`, `Bool` as "true"/"false").
Set operators (`ForAnyValue:`/`ForAllValues:`) and the numeric, date, IP, ARN and binary families are not
supported: `parse_condition` refuses them, because no statement here needs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.keypolicy.wildcards import wildcard_match

IF_EXISTS = "IfExists"


class UnsupportedCondition(ValueError):
    """A Condition element outside the supported grammar; the message names the part."""


def _equals(value: str, wanted: str) -> bool:
    return value == wanted


def _equals_ignore_case(value: str, wanted: str) -> bool:
    return value.casefold() == wanted.casefold()


def _like(value: str, pattern: str) -> bool:
    return wildcard_match(pattern, value, ignore_case=False)


# operator -> (comparison of one request value with one policy value, negated?)
OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_equals, False),
    "StringNotEquals": (_equals, True),
    "StringEqualsIgnoreCase": (_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_equals_ignore_case, True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "Bool": (_equals_ignore_case, False),
}
NULL = "Null"


@dataclass(frozen=True)
class Clause:
    """One operator applied to one condition key, with the policy's values for it."""

    operator: str  # as written, e.g. "StringEqualsIfExists"
    key: str
    values: tuple[str, ...]

    def holds(self, context: Mapping[str, str]) -> bool:
        present = lookup(context, self.key)
        base, if_exists = _split_if_exists(self.operator)
        if base == NULL:
            return (present is None) == (self.values[0].lower() == "true")
        compare, negated = OPERATORS[base]
        if present is None:
            return if_exists or negated
        matched = any(compare(present, wanted) for wanted in self.values)
        return matched != negated


Condition = tuple[Clause, ...]


def lookup(context: Mapping[str, str], key: str) -> str | None:
    """The request's value for `key`; condition key names are not case-sensitive."""
    if key in context:
        return context[key]
    folded = key.casefold()
    return next((v for k, v in context.items() if k.casefold() == folded), None)


def holds(condition: Condition, context: Mapping[str, str]) -> bool:
    """Every clause must hold (an empty condition always does)."""
    return all(clause.holds(context) for clause in condition)


def parse_condition(raw: Any) -> Condition:
    """The `Condition` element as clauses; UnsupportedCondition names what is not supported."""
    if not isinstance(raw, Mapping):
        raise UnsupportedCondition(f"Condition must be an object, got {raw!r}")
    clauses: list[Clause] = []
    for operator, block in raw.items():
        base, _ = _split_if_exists(operator)
        if base != NULL and base not in OPERATORS:
            raise UnsupportedCondition(f"condition operator {operator!r} is not supported")
        if not isinstance(block, Mapping) or not block:
            raise UnsupportedCondition(f"{operator} needs an object of condition keys")
        for key, value in block.items():
            clauses.append(Clause(operator, str(key), _values(operator, value)))
    return tuple(clauses)


def _values(operator: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UnsupportedCondition(f"{operator} has an empty list of values")
    out = tuple(str(v).lower() if isinstance(v, bool) else v for v in values)
    if not all(isinstance(v, str) for v in out):
        raise UnsupportedCondition(f"{operator} values must be strings or booleans, got {value!r}")
    if operator == NULL and (len(out) != 1 or out[0].lower() not in ("true", "false")):
        raise UnsupportedCondition(f"Null takes one value, true or false, got {value!r}")
    return out


def _split_if_exists(operator: str) -> tuple[str, bool]:
    if operator.endswith(IF_EXISTS) and operator != IF_EXISTS:
        return operator[: -len(IF_EXISTS)], True
    return operator, False

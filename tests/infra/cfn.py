"""Helpers over a synthesized CloudFormation template: find resources by type, evaluate Fn::Sub like
CloudFormation does (with fixed pseudo parameters), and collect IAM statements. No AWS calls."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::StackName": "NitroEnclaveDemo",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
_PLACEHOLDER = re.compile(r"\$\{(!?)([^}]*)\}")

Json = dict[str, Any]


def resources(template: Json, type_name: str) -> dict[str, Json]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == type_name}


def only(template: Json, type_name: str) -> tuple[str, Json]:
    found = resources(template, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.items()))


def evaluate(node: Any) -> str:
    """Render an intrinsic-function tree to text, as CloudFormation would at deploy time (fake ids)."""
    if isinstance(node, str):
        return node
    if isinstance(node, int | float):
        return str(node)
    assert isinstance(node, dict), f"not an intrinsic function: {node!r}"
    ((fn, arg),) = node.items()
    return _INTRINSICS[fn](arg)


def _sub(arg: Any) -> str:
    body, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
    return substitute(body, {name: evaluate(value) for name, value in variables.items()})


_INTRINSICS: dict[str, Callable[[Any], str]] = {
    "Ref": lambda arg: PSEUDO.get(arg, f"ref-{arg}"),
    "Fn::GetAtt": lambda arg: f"getatt-{arg[0]}-{arg[1]}",
    "Fn::Join": lambda arg: str(arg[0]).join(evaluate(part) for part in arg[1]),
    "Fn::Base64": evaluate,
    "Fn::Sub": _sub,
}


def substitute(body: str, variables: Mapping[str, str]) -> str:
    """Fn::Sub semantics: ${Name} from variables or pseudo parameters, ${!Literal} stays ${Literal}."""

    def replace(match: re.Match[str]) -> str:
        escaped, name = match[1], match[2]
        if escaped:
            return "${" + name + "}"
        if name in variables:
            return variables[name]
        if name in PSEUDO:
            return PSEUDO[name]
        raise AssertionError(f"Fn::Sub placeholder ${{{name}}} has no value")

    return _PLACEHOLDER.sub(replace, body)


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

"""CloudFormation's intrinsic functions, replayed on a synthesized template: Ref, Fn::GetAtt, Fn::Sub,
Fn::Join, Fn::Select, Fn::Split, Fn::Base64. One implementation for the infra tests (fake ids) and the
rehearsal (the emulator's real URLs and ARNs). No AWS calls.

Rules from the CloudFormation User Guide, "Intrinsic function reference": Fn::Sub replaces `${Name}` with a
variable of its own map, else a parameter, resource (Ref) or `${Resource.Attribute}` (GetAtt), and writes
`${!Literal}` as `${Literal}`; Fn::Split returns a list, Fn::Select picks by zero-based index; Fn::Base64
is rendered here as its decoded text (what the instance reads back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PSEUDO: Mapping[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::StackName": "NitroEnclaveDemo",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
_PLACEHOLDER = re.compile(r"\$\{(!?)([^}]*)\}")

Json = dict[str, Any]
Value = str | list[str]


class UnresolvedReference(LookupError):
    """A Ref, GetAtt or Fn::Sub placeholder that the resolution map has no value for."""


@dataclass(frozen=True)
class Resolver:
    """What CloudFormation would know at deploy time: pseudo parameters, each resource's Ref, its attributes.

    With `strict=False` an unknown Ref or GetAtt renders as `ref-<Id>` / `getatt-<Id>-<Attr>` (the infra
    tests' fake ids); with `strict=True` it raises, so the rehearsal never runs on a made-up value.
    """

    pseudo: Mapping[str, str] = field(default_factory=lambda: dict(PSEUDO))
    refs: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    strict: bool = False

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        if self.strict:
            raise UnresolvedReference(f"Ref {name} has no value in the resolution map")
        return f"ref-{name}"

    def get_att(self, logical_id: str, attribute: str) -> str:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        if self.strict:
            raise UnresolvedReference(
                f"Fn::GetAtt {logical_id}.{attribute} has no value in the resolution map"
            )
        return f"getatt-{logical_id}-{attribute}"

    def evaluate(self, node: Any) -> Value:
        """Render an intrinsic-function tree, as CloudFormation would at deploy time."""
        if isinstance(node, str):
            return node
        if isinstance(node, bool):
            return "true" if node else "false"
        if isinstance(node, int | float):
            return str(node)
        if isinstance(node, list):
            return [self.text(item) for item in node]
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"not an intrinsic function: {node!r}")
        ((fn, arg),) = node.items()
        handlers: dict[str, Callable[[Any], Value]] = {
            "Ref": lambda a: self.ref(str(a)),
            "Fn::GetAtt": self._get_att,
            "Fn::Join": lambda a: str(a[0]).join(self.text(part) for part in self._list(a[1])),
            "Fn::Base64": self.text,
            "Fn::Sub": self._sub,
            "Fn::Split": lambda a: self.text(a[1]).split(str(a[0])),
            "Fn::Select": lambda a: self._list(a[1])[int(self.text(a[0]))],
        }
        if fn not in handlers:
            raise ValueError(f"intrinsic function {fn} is not supported here")
        return handlers[fn](arg)

    def text(self, node: Any) -> str:
        value = self.evaluate(node)
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got the list {value!r}")
        return value

    def _list(self, node: Any) -> list[str]:
        value = self.evaluate(node)
        return value if isinstance(value, list) else [value]

    def _get_att(self, arg: Any) -> str:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        return self.get_att(logical_id, attribute)

    def _sub(self, arg: Any) -> str:
        body, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        return self.substitute(body, {name: self.text(value) for name, value in variables.items()})

    def substitute(self, body: str, variables: Mapping[str, str]) -> str:
        """Fn::Sub: `${Name}` from variables, else a pseudo parameter or Ref, `${Id.Attr}` a GetAtt."""

        def replace(match: re.Match[str]) -> str:
            escaped, name = match[1], match[2]
            if escaped:
                return "${" + name + "}"
            if name in variables:
                return variables[name]
            if name in self.pseudo or name in self.refs:
                return self.ref(name)
            if "." in name and not self.strict:
                return self._get_att(name)
            if "." in name and tuple(name.split(".", 1)) in self.attributes:
                return self._get_att(name)
            raise UnresolvedReference(f"Fn::Sub placeholder ${{{name}}} has no value")

        return _PLACEHOLDER.sub(replace, body)


DEFAULT = Resolver()


def evaluate(node: Any) -> str:
    """Render to text with fixed pseudo parameters and fake ids (the infra tests' view)."""
    return DEFAULT.text(node)


def substitute(body: str, variables: Mapping[str, str]) -> str:
    return DEFAULT.substitute(body, variables)

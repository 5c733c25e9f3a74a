"""A finding: one check's verdict, what happened and what to do. Rendering only; no checks here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # the input could not be collected here


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    what: str
    todo: str = ""


def ok(check: str, what: str) -> Finding:
    return Finding(check, Status.OK, what)


def skip(check: str, what: str) -> Finding:
    return Finding(check, Status.SKIP, what)


def render_text(findings: Sequence[Finding]) -> str:
    lines = []
    for finding in findings:
        lines.append(f"[{finding.status.value.upper():4}] {finding.check}: {finding.what}")
        if finding.todo:
            lines.append(f"       what to do: {finding.todo}")
    return "\n".join(lines)


def render_json(findings: Sequence[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2)


def exit_code(findings: Sequence[Finding]) -> int:
    """1 if anything failed, else 0 (warnings and skips do not fail a run)."""
    return 1 if any(f.status is Status.FAIL for f in findings) else 0

"""Bounded parsing and bounded echoes: what hostile input cannot make us recurse into or write back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.shared import limits

DEEP = "[" * 100_000 + "]" * 100_000  # raised RecursionError in json.loads before the bound


def test_deep_nesting_is_refused_before_the_parser_runs() -> None:
    with pytest.raises(limits.JsonRefused, match="nested deeper than"):
        limits.loads(DEEP)


def test_nesting_at_the_limit_is_parsed() -> None:
    depth = limits.MAX_JSON_DEPTH
    assert limits.loads("[" * depth + "]" * depth) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    text = '{"a": "' + "[" * 1000 + '\\"{{{"}'
    assert limits.loads(text) == {"a": "[" * 1000 + '"{{{'}


@pytest.mark.parametrize("data", [b"\xff\xfe", "{nope", b""])
def test_non_json_is_refused_with_a_named_error(data: str | bytes) -> None:
    with pytest.raises(limits.JsonRefused):
        limits.loads(data)


def test_clip_bounds_text_and_marks_the_cut() -> None:
    clipped = limits.clip("x" * 10_000, 100)
    assert len(clipped) == 100
    assert clipped.endswith(limits.ELLIPSIS)
    assert limits.clip("short", 100) == "short"


def test_echo_of_a_huge_value_is_short() -> None:
    assert len(limits.echo("v" * 240_000)) <= limits.MAX_ECHO_CHARS


@given(st.lists(st.text(alphabet='ab"\\[]{}\n\u00e9', max_size=40), max_size=5))
def test_brackets_inside_strings_never_count(texts: list[str]) -> None:
    assert limits.nesting_depth(json.dumps(texts)) == 1
    assert limits.nesting_depth(json.dumps({"k": texts})) == 2


HOSTILE = '"' + '\\"' * (128 * 1024)  # 256 KB: an unterminated string of escaped quotes


def test_an_unterminated_string_of_escapes_is_one_token_not_one_scan_per_quote() -> None:
    """The work is counted, not timed: the string pattern matches the whole hostile tail in one match, so
    no search restarts inside it (the old pattern failed at each of its quotes in turn, each attempt
    reading to the end)."""
    (token,) = list(limits._TOKEN.finditer(HOSTILE))
    assert token.span() == (0, len(HOSTILE))
    assert limits.nesting_depth(HOSTILE + "[[") == 0  # brackets after an open string are inside it
    assert limits.nesting_depth('["a\\\\"]') == 1


def test_a_body_over_its_cap_is_refused_before_any_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counted(name: str) -> Any:
        def record(*args: object) -> int:
            calls.append(name)
            return 0

        return record

    monkeypatch.setattr(limits, "nesting_depth", counted("nesting_depth"))
    monkeypatch.setattr(json, "loads", counted("json.loads"))
    with pytest.raises(limits.JsonRefused, match="more than 1000"):
        limits.loads(HOSTILE, max_chars=1000)
    assert calls == []

"""Limits on what hostile input can make us parse or echo: bounded JSON nesting, bounded error text.

Both sides of every channel (SQS bodies, enclave frames) parse through `loads`, which refuses a body over
its size cap and nesting deeper than `MAX_JSON_DEPTH` before the parser runs (Python's parser would
otherwise recurse until `RecursionError`), in one linear pass. Anything written back that can carry input
goes through `clip`. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Our messages nest three levels deep (envelope → body → credentials); 32 leaves room and stays far
# below the interpreter's recursion limit (1000).
MAX_JSON_DEPTH = 32
# Error messages we write (results, DLQ attributes, error frames) and echoed values inside them.
MAX_ERROR_MESSAGE_CHARS = 512
MAX_ECHO_CHARS = 40
ELLIPSIS = "…"

# One token at a time, left to right: a JSON string literal (its loop unrolled: runs of plain characters,
# then one escape; ~5x faster on long strings than one alternation per character, which matters since
# signed results carry a ~4-6 KB base64 document through every parse) or a bracket. The closing quote is
# optional, so an unterminated string is one match to the end of the text: the scan never restarts inside
# it. (With the quote required, `"` + `\"` * N failed the match at each of its N quotes in turn, each
# attempt reading to the end: quadratic, 46 s at 80 KB.)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset("[{")


class JsonRefused(ValueError):
    """Not JSON, or JSON we refuse to parse (too deep); the message says which."""


def nesting_depth(text: str, stop_above: int = MAX_JSON_DEPTH) -> int:
    """The deepest bracket nesting outside string literals (counting stops once above `stop_above`), in
    one pass: every character is read by at most one token match."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        depth += 1 if token in _OPENERS else -1
        if depth > deepest:
            deepest = depth
            if deepest > stop_above:
                break
    return deepest


def loads(data: str | bytes, max_depth: int = MAX_JSON_DEPTH, max_chars: int | None = None) -> Any:
    """`json.loads` that refuses, with `JsonRefused`, text longer than `max_chars` (bytes or characters,
    checked first), not UTF-8 JSON, or nesting too deep."""
    if max_chars is not None and len(data) > max_chars:
        raise JsonRefused(f"body of {len(data)} bytes or characters, more than {max_chars}")
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as error:
        raise JsonRefused("not UTF-8 text") from error
    if nesting_depth(text, max_depth) > max_depth:
        raise JsonRefused(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise JsonRefused("not JSON") from error


def clip(text: str, limit: int = MAX_ERROR_MESSAGE_CHARS) -> str:
    """`text` cut to at most `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def echo(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """A short repr of an input value for an error message; never the whole of a large input."""
    if isinstance(value, str | bytes) and len(value) > 4 * limit:
        value = value[: 4 * limit]  # repr() of a huge value would cost as much as the value
    return clip(repr(value), limit)

"""IAM's wildcard matching (`*` any run of characters, `?` exactly one), shared by actions, resources and
`StringLike`. Pure."""

from __future__ import annotations

import functools
import re


@functools.lru_cache(maxsize=256)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcards: `*` any run of characters, `?` one character; nothing else is special."""
    return _wildcard_regex(pattern, ignore_case).fullmatch(value) is not None

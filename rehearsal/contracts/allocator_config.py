"""What the Nitro Enclaves allocator accepts in /etc/nitro_enclaves/allocator.yaml, as a pure function.

Source: `parse_config` in `bootstrap/nitro-enclaves-allocator` of aws/aws-nitro-enclaves-cli (read at commit
2950b36; the function is unchanged since 2020). It is not a YAML parser. It reads the file with bash's
`while read line` (no `-r`), so for each line:

- a final line without a newline is never read at all (`read` fails on it);
- a backslash escapes the next character, and one at the end of a line joins it to the next;
- leading and trailing blanks (space, tab) are stripped;
- a line matching `^\\s*#` is skipped (a comment);
- every line up to and including the first line exactly `---` is skipped, and any later `---` too;
- every other line must be `key: value`: the key (the leading run of `[-_a-zA-Z0-9]` before the first colon)
  must be `memory_mib`, `cpu_count` or `cpu_pool`, else `Error in <file>:<n> - unexpected: <key>`; **a blank
  line has an empty key and fails so**. The value is what follows the last colon, less the first run of blanks
  (and one `"` after it) and one trailing `"`; an empty value fails with `missing value for <key>`.
- after the file: `memory_mib` is required, and exactly one of `cpu_count` and `cpu_pool`.

The allocator prints `Error: <message>` and exits 1; the service fails. Numbers are checked later, when the
allocator reserves them, so values stay text here. Our own code, written from those rules; nothing copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PATH = "/etc/nitro_enclaves/allocator.yaml"
KEYS = ("memory_mib", "cpu_count", "cpu_pool")
DOCUMENT_START = "---"
_COMMENT = re.compile(r"^\s*#")
_KEY = re.compile(r"^[-_a-z0-9]+", re.IGNORECASE)
_BLANKS = " \t"


class AllocatorConfigError(ValueError):
    """The allocator would refuse this file; the message is the one it prints after `Error: `."""


class UnexpectedLine(AllocatorConfigError):
    """A line after `---` whose key is not one the allocator knows (a blank line included)."""


class MissingValue(AllocatorConfigError):
    """A known key with nothing after its colon."""


class IncompleteConfig(AllocatorConfigError):
    """The file ended without `memory_mib`, or without exactly one of `cpu_count` and `cpu_pool`."""


@dataclass(frozen=True)
class AllocatorConfig:
    """The settings the allocator would reserve, as the text it read (it checks numbers later)."""

    memory_mib: str
    cpu_count: str | None
    cpu_pool: str | None


def parse_allocator_config(text: str, *, path: str = DEFAULT_PATH) -> AllocatorConfig:
    """Apply the allocator's parse rules to the file's text; raise what the allocator would fail with."""
    found: dict[str, str] = {}
    started = False
    for number, line in enumerate(read_lines(text), start=1):
        if _COMMENT.match(line):
            continue
        if line == DOCUMENT_START:
            started = True
            continue
        if not started:
            continue
        key_match = _KEY.match(line.split(":", 1)[0])
        key = key_match.group(0) if key_match else ""
        if key not in KEYS:
            raise UnexpectedLine(f"Error in {path}:{number} - unexpected: {key}")
        value = _value(line)
        if not value:
            raise MissingValue(f"Error in {path}:{number} - missing value for {key}")
        found[key] = value
    return _validated(found)


def read_lines(text: str) -> list[str]:
    """The lines bash's `while read line` hands the loop body (default IFS, backslash escapes on)."""
    lines: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")
            if escaped != "\n":  # a backslash-newline joins the next line
                current.append(escaped)
        elif char == "\n":
            lines.append("".join(current).strip(_BLANKS))
            current = []
        else:
            current.append(char)
    return lines  # text after the last newline is never read: `read` returns false on it


def _value(line: str) -> str:
    last_colon = line.rfind(":")  # sed `s/^.+://`: through the last colon that has text before it
    value = line[last_colon + 1 :] if last_colon > 0 else line
    value = re.sub(r'\s+"?', "", value, count=1)
    return re.sub(r'"?$', "", value, count=1)


def _validated(found: dict[str, str]) -> AllocatorConfig:
    if not found.get("memory_mib"):
        raise IncompleteConfig("Config error: missing memory reservation (`memory_mib`).")
    cpu_count, cpu_pool = found.get("cpu_count"), found.get("cpu_pool")
    if not cpu_count and not cpu_pool:
        raise IncompleteConfig("Config error: missing CPU reservation (either `cpu_count` or `cpu_pool`).")
    if cpu_count and cpu_pool:
        raise IncompleteConfig("Config error: `cpu_count` conflicts with `cpu_pool`.")
    return AllocatorConfig(memory_mib=found["memory_mib"], cpu_count=cpu_count, cpu_pool=cpu_pool)

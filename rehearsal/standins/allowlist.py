"""vsock-proxy's allowlist file, read as vsock-proxy reads it, for the YAML shapes its docs and ours use.

Source: `check_allowlist` in aws/aws-nitro-enclaves-cli `vsock_proxy/src/proxy.rs` (2950b36): the first YAML
document's `allowlist` must be a list ("No allowlist field"), each entry needs `address` ("No address field")
and an integer `port` ("No port field or invalid type"); an entry allows the remote when the ports are equal
and the address equals the remote host name (else, upstream, when the names resolve to the same IP: there is
no DNS in the rehearsal, so names only). Stdlib only: entries in flow (`- {address: h, port: 443}`) or block
form (`- address: h` / ` port: 443`); any other YAML is refused as "Bad yaml format" rather than guessed at.
"""

from __future__ import annotations

import re

_FLOW = re.compile(r"^-\s*\{(?P<body>.*)\}\s*$")
_PAIR = re.compile(r"^(?P<key>[A-Za-z_]+)\s*:\s*(?P<value>\S.*?)\s*$")


class AllowlistError(Exception):
    """vsock-proxy's own words for a file it cannot use."""


def _scalar(text: str) -> str | int:
    text = text.strip().strip("'\"")
    return int(text) if text.isdigit() else text


def _first_document(text: str) -> list[str]:
    lines = [
        line.rstrip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if lines and lines[0] == "---":
        lines = lines[1:]
    return lines[: lines.index("---")] if "---" in lines else lines


def parse(text: str) -> list[dict[str, str | int]]:
    lines = _first_document(text)
    if "allowlist:" not in lines:
        raise AllowlistError("No allowlist field")
    entries: list[dict[str, str | int]] = []
    for line in lines[lines.index("allowlist:") + 1 :]:
        stripped = line.strip()
        if not line.startswith((" ", "-")):
            break  # the next top-level key
        flow = _FLOW.match(stripped)
        if flow:
            entries.append({})
            pairs = [part.strip() for part in flow["body"].split(",")]
        elif stripped.startswith("- "):
            entries.append({})
            pairs = [stripped[2:]]
        elif entries:
            pairs = [stripped]
        else:
            raise AllowlistError("Bad yaml format")
        for pair in pairs:
            match = _PAIR.match(pair)
            if not match:
                raise AllowlistError("Bad yaml format")
            entries[-1][match["key"]] = _scalar(match["value"])
    return entries


def check(text: str, remote_host: str, remote_port: int) -> None:
    for entry in parse(text):
        if "address" not in entry:
            raise AllowlistError("No address field")
        if not isinstance(entry.get("port"), int):
            raise AllowlistError("No port field or invalid type")
        if entry["port"] == remote_port and entry["address"] == remote_host:
            return
    raise AllowlistError("The given address and port are not allowed")

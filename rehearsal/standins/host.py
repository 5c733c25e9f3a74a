"""What every stand-in shares: the root it acts on, the settings install_standins wrote, how it fails.

Stdlib only: the stand-ins run under the rehearsed host's /usr/bin/python3, most before any venv exists.
`REHEARSAL_STANDIN_ROOT` (default `/`) lets a test run a stand-in against a scratch directory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

ENV_ROOT = "REHEARSAL_STANDIN_ROOT"
CONFIG_FILE = "/etc/rehearsal/standins.json"
LIB_DIR = "/usr/lib/rehearsal-standins"  # this package, copied into the rehearsed root
VENV_PYTHON = "/opt/nitro-enclave-demo/venv/bin/python"


def root() -> Path:
    return Path(os.environ.get(ENV_ROOT) or "/")


def path(absolute: str) -> Path:
    """`absolute` (a path on the rehearsed host) under the root the stand-in acts on."""
    return root() / absolute.lstrip("/")


def settings() -> dict[str, Any]:
    """The StandinSettings install_standins wrote, as a dict (see rehearsal/standins/__init__.py)."""
    config = path(CONFIG_FILE)
    try:
        loaded = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(f"rehearsal stand-in: cannot read its settings {config}: {error}")
    if not isinstance(loaded, dict):
        fail(f"rehearsal stand-in: {config} is not a JSON object")
    return loaded


def fail(message: str, code: int = 1) -> NoReturn:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def write_json(target: Path, value: object) -> None:
    """Write atomically, so a reader never sees half a state file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.tmp")
    scratch.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    scratch.replace(target)

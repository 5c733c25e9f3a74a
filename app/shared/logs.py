"""JSON-lines logging with fixed keys, configured once by each program's main().

Callers pass ids and timings through `extra={"fields": {...}}`; payloads, plaintexts, keys and
credentials never go into a log record.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO, Any

FIXED_KEYS = ("ts", "level", "logger", "msg")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in FIXED_KEYS})
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: exception texts from libraries can echo request data.
            entry["exc_type"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Route every logger to one JSON-lines handler on stderr (or the given stream)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("msg", extra=fields(message_id=..., ms=...))` — keeps call sites short."""
    return {"fields": values}

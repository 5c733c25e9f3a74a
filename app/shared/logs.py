"""JSON-lines logging with fixed keys, configured once by each program's main().

Callers pass ids and timings through `extra={"fields": {...}}`; payloads, plaintexts, keys and
credentials never go into a log record.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, Any

FIXED_KEYS = ("ts", "level", "logger", "msg")


def timestamp(created: float) -> str:
    """UTC, millisecond precision, `Z`-suffixed: the `ts` of every line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def record_entry(record: logging.LogRecord) -> dict[str, Any]:
    """ts, level, logger, msg, then the record's `fields`: the shape of every log line we write."""
    entry: dict[str, Any] = {
        "ts": timestamp(record.created),
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
    return entry


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see `record_entry`)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(record_entry(record), default=str, separators=(",", ":"))


def configure(level: str = "INFO", stream: IO[str] | None = None, path: Path | None = None) -> None:
    """Route every logger to one JSON-lines handler: appended to `path`, else on `stream` (stderr)."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler(stream or sys.stderr)
    )
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for replaced in root.handlers:
        if isinstance(replaced, logging.FileHandler):  # ours from an earlier call; never close stderr
            replaced.close()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("botocore", "boto3", "urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("msg", extra=fields(message_id=..., ms=...))` — keeps call sites short."""
    return {"fields": values}

"""Ships the enclave's own log lines and counters to the parent over a dedicated link (vsock 3:5005).

It must never block the enclave: a bounded queue that drops the oldest line, one sender thread that
reconnects with back-off. Every line is scrubbed of digit runs that could be a card number before it
is queued; nothing here reads request payloads.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.shared import framing, logs, transport

log = logging.getLogger(__name__)

OFF_VALUES = frozenset({"", "off", "none"})

QUEUE_LINES = 2048
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 2.0
COUNTERS_INTERVAL_S = 10.0
CLOSE_FLUSH_S = 1.0
# After the first line of a quiet spell the sender waits this long for more, then sends them in one go:
# one wake-up and one write per batch instead of per line (a line per card made that a cost per card).
LINGER_S = 0.25
MAX_TEXT_CHARS = 2000
REDACTED = "[redacted]"

# A run of 12 or more digits, any of them separated by whitespace or dashes: card numbers are 12-19
# digits and are often written in groups. Longer runs are redacted too (a number hides in them).
_SEPARATORS = r"[\s\-]"
_DIGIT_RUN = re.compile(rf"\d(?:{_SEPARATORS}*\d){{11,}}")
_MIN_REDACTED_INT = 10**11


def scrub(text: str) -> str:
    """The text with every run of 12+ digits (spaces/dashes allowed between them) redacted."""
    return _DIGIT_RUN.sub(REDACTED, text[:MAX_TEXT_CHARS])


def scrub_value(value: Any) -> Any:
    """Scrubs strings, big numbers, and the keys and values of nested dicts/lists; the rest as text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return scrub(repr(value)) if abs(value) >= _MIN_REDACTED_INT else value
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return scrub(value if isinstance(value, str) else str(value))


@dataclass
class Counters:
    """Decrypt outcomes since start, observed from the handler's own log records (thread-safe)."""

    decrypt_ok: int = 0
    decrypt_failed: dict[str, int] = field(default_factory=dict)
    decrypt_ms_sum: float = 0.0
    kms_ms_sum: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe(self, record: logging.LogRecord) -> bool:
        """Count the record if it is a decrypt outcome; True for the per-card success line."""
        fields = getattr(record, "fields", None)
        values = fields if isinstance(fields, dict) else {}
        message = record.getMessage()
        with self._lock:
            if record.name == "app.enclave.handler" and message == "decrypted":
                self.decrypt_ok += 1
                self.decrypt_ms_sum += _number(values.get("ms"))
                self.kms_ms_sum += _number(values.get("kms_ms"))
                return True
            if record.name == "app.enclave.handler" and message == "decrypt refused":
                code = str(values.get("code", "unknown"))
                self.decrypt_failed[code] = self.decrypt_failed.get(code, 0) + 1
            elif record.name == "app.enclave.server" and message == "handler failed":
                self.decrypt_failed["internal"] = self.decrypt_failed.get("internal", 0) + 1
        return False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "decrypt_ok": self.decrypt_ok,
                "decrypt_failed": dict(self.decrypt_failed),
                "decrypt_ms_sum": round(self.decrypt_ms_sum, 2),
                "kms_ms_sum": round(self.kms_ms_sum, 2),
            }


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def record_entry(record: logging.LogRecord) -> dict[str, Any]:
    """The same fixed keys as every other log line (app/shared/logs.py), scrubbed."""
    scrubbed: dict[str, Any] = scrub_value(logs.record_entry(record))
    return scrubbed


class LogChannel:
    """A bounded queue of entries and the thread that sends them, one JSON object per frame."""

    def __init__(self, url: str, *, queue_lines: int = QUEUE_LINES) -> None:
        self.endpoint = transport.parse_url(url)
        self.counters = Counters()
        self.dropped = 0
        self.sent = 0
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._limit = queue_lines
        self._ready = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="enclave-log-channel", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, entry: dict[str, Any]) -> None:
        """Queue one entry at once; when full the oldest one goes (and is counted)."""
        with self._ready:
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(entry)
            if len(self._queue) == 1:  # only the first line of a batch needs the sender awake
                self._ready.notify()

    def counters_entry(self) -> dict[str, Any]:
        entry = {"ts": logs.timestamp(time.time()), "level": "info", "logger": __name__, "msg": "counters"}
        with self._ready:
            totals = {"dropped": self.dropped, "sent": self.sent}
        return {**entry, "kind": "counters", **self.counters.snapshot(), **totals}

    def close(self, flush_s: float = CLOSE_FLUSH_S) -> None:
        """Queue the final counters, give the sender `flush_s` to deliver, then stop it."""
        self.offer(self.counters_entry())
        self._closing.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(flush_s)

    def _run(self) -> None:
        sock: socket.socket | None = None
        backoff = BACKOFF_MIN_S
        next_counters = time.monotonic() + COUNTERS_INTERVAL_S
        while True:
            if time.monotonic() >= next_counters:
                self.offer(self.counters_entry())
                next_counters = time.monotonic() + COUNTERS_INTERVAL_S
            batch = self._take(max(next_counters - time.monotonic(), 0.0))
            if not batch:
                if self._closing.is_set():
                    break
                continue
            if sock is None:
                sock = self._connect()
            if sock is None:
                self._give_back(batch)
                if self._closing.is_set():
                    break
                self._closing.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            sock = self._send(sock, batch)
        if sock is not None:
            sock.close()

    def _take(self, timeout_s: float) -> list[dict[str, Any]]:
        with self._ready:
            if not self._queue and not self._closing.is_set():
                self._ready.wait(timeout_s)
            if self._queue and not self._closing.is_set():
                self._ready.wait(LINGER_S)  # offer() does not wake us while we hold lines back
            batch = list(self._queue)
            self._queue.clear()
            return batch

    def _give_back(self, batch: list[dict[str, Any]]) -> None:
        """Nothing was sent: put the batch back in front, keeping the newest lines if it overflows."""
        with self._ready:
            room = max(self._limit - len(self._queue), 0)
            kept = batch[len(batch) - room :] if room else []
            self.dropped += len(batch) - len(kept)
            self._queue.extendleft(reversed(kept))

    def _connect(self) -> socket.socket | None:
        try:
            return transport.connect(self.endpoint, CONNECT_TIMEOUT_S)
        except transport.TransportError:
            return None

    def _send(self, sock: socket.socket, batch: list[dict[str, Any]]) -> socket.socket | None:
        frames = b"".join(_frame(entry) for entry in batch)
        try:
            sock.sendall(frames)
        except OSError:
            # Part of the batch may have arrived; count it as lost rather than send it twice.
            with self._ready:
                self.dropped += len(batch)
            with contextlib.suppress(OSError):
                sock.close()
            return None
        with self._ready:
            self.sent += len(batch)
        return sock


def _frame(entry: dict[str, Any]) -> bytes:
    payload = json.dumps(entry, default=str, separators=(",", ":")).encode()
    if len(payload) > framing.MAX_FRAME_BYTES:
        payload = json.dumps({k: entry[k] for k in ("ts", "level", "logger") if k in entry}).encode()
    return framing.encode_frame(payload)


class ChannelHandler(logging.Handler):
    """A logging handler that counts decrypt outcomes and queues each record, scrubbed, on the channel.

    The one line per successful card ("decrypted") is counted but not shipped: at hundreds of cards a
    second it cost the enclave more CPU than anything but the RSA and TLS work, the relay already logs
    every card with its timings, and the counters carry the enclave's own totals every 10 s.
    """

    def __init__(self, channel: LogChannel, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == __name__:
            return  # the channel's own troubles stay local: they cannot travel on it
        try:
            if self.channel.counters.observe(record):
                return
            self.channel.offer(record_entry(record))
        except Exception:  # a logging handler must never raise into the enclave's code
            self.handleError(record)


def resolve_url(explicit: str | None, environ_value: str | None) -> str | None:
    """Option > environment; "off"/"none"/"" (or nothing at all) turns the channel off."""
    value = explicit if explicit is not None else environ_value
    if value is None or value.strip().lower() in OFF_VALUES:
        return None
    return value.strip()


def install(url: str, logger: logging.Logger | None = None) -> ChannelHandler:
    """Start a channel to `url` and attach its handler to `logger` (the root logger by default)."""
    channel = LogChannel(url)
    channel.start()
    handler = ChannelHandler(channel)
    (logger or logging.getLogger()).addHandler(handler)
    return handler


def uninstall(handler: ChannelHandler, logger: logging.Logger | None = None) -> None:
    (logger or logging.getLogger()).removeHandler(handler)
    handler.channel.close()

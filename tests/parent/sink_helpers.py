"""The parent's enclave-log sink on 127.0.0.1, run in a thread, writing to a string buffer."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from app.parent.log_sink import LogSink, open_sink


@contextmanager
def running_sink() -> Iterator[tuple[str, LogSink, io.StringIO]]:
    out = io.StringIO()
    sink, url = open_sink("tcp://127.0.0.1:0", out)
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, sink, out
    finally:
        sink.stop()
        thread.join(5)

"""Serving one of the rehearsal's small HTTP stand-ins (IMDS, SignalResource, CodeBuild) until killed.

The harness starts each as a child and waits for its ready line, `{"listening": "HOST:PORT"}`.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_forever(listen: str, handler: type[BaseHTTPRequestHandler]) -> int:
    """Bind `listen` (HOST:PORT), print the ready line, serve until the process is stopped."""
    host, _, port = listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), handler)
    print(json.dumps({"listening": listen}), flush=True)
    server.serve_forever()
    return 0

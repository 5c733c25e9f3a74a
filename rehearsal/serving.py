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


def answer(handler: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str) -> None:
    """One whole answer: status, Content-Type, Content-Length, body (the stand-ins keep connections alive)."""
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)

"""An HTTPS front for the emulator that keeps connections alive, as KMS does.

Werkzeug's development server, which moto serves on, closes every connection after one response
(`Connection: close`, werkzeug/serving.py: "This disables HTTP/1.1 keep-alive connections"). KMS keeps an
HTTPS connection open between requests, and that is what makes blocker 3 bite: each idle pooled connection of
the enclave holds a vsock-proxy worker, so connection N+1 waits until boto3's read timeout. Without this
front, every connection closes after one request, a worker frees at once, and too few workers only slow
the cards down. The front answers HTTP/1.1 with Content-Length and keeps the connection; each request goes
on to the emulator's plain-HTTP listener unchanged (moto does not check SigV4 signatures, and picks the
service from the Authorization header's scope).
"""

from __future__ import annotations

import http.client
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)
UPSTREAM_TIMEOUT_S = 30.0
IDLE_TIMEOUT_S = 300.0  # long enough that an idle pooled connection outlives any rehearsal step


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    upstream: ClassVar[tuple[str, int]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        connection = http.client.HTTPConnection(*self.upstream, timeout=UPSTREAM_TIMEOUT_S)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            payload = answer.read()
            self.send_response(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() not in ("server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        finally:
            connection.close()

    do_GET = do_POST  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the emulator logs every call
        return


def start(upstream_http_url: str, tls: ssl.SSLContext, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve on `host`, a free port, in a daemon thread; read the port from `server.server_address`."""
    parts = urlsplit(upstream_http_url)
    Handler.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

#!/usr/bin/python3
"""Stand-in for /usr/bin/dockerd (docker.service, Type=notify): listens on /var/run/docker.sock and only
answers.

It tells systemd it is ready (sd_notify READY=1 on $NOTIFY_SOCKET, systemd.service(5) Type=notify) once the
socket listens, so `systemctl enable --now docker.service` returns when `docker build` can reach it, as with
the real daemon. Building is the CLI stand-in's job (docker_cli.py). Exits 0 on SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import host

SOCKET = "/var/run/docker.sock"


def notify_ready() -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.connect("\0" + address[1:] if address.startswith("@") else address)
        notify.sendall(b"READY=1")


def main() -> int:
    path = host.path(SOCKET)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    notify_ready()
    print(f"rehearsal stand-in dockerd: API listen on {SOCKET}", flush=True)
    try:
        while True:
            conn, _ = listener.accept()
            with conn, contextlib.suppress(OSError):  # a client that hung up first changes nothing
                conn.sendall(b"OK\n")
    finally:
        path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())

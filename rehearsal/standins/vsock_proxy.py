#!/usr/bin/python3
"""Stand-in for /usr/bin/vsock-proxy: `vsock-proxy LOCAL_PORT REMOTE_ADDR REMOTE_PORT [--config F] [-w N]`.

Contract (aws/aws-nitro-enclaves-cli `vsock_proxy/src/main.rs` and `proxy.rs`, 2950b36): `--num_workers`/`-w`
defaults to 4 and must not be 0; `--config` defaults to /etc/nitro_enclaves/vsock-proxy.yaml; the allowlist is
checked once, at start (allowlist.py), and a refusal ends the program: `Error: "Error at checking the
allowlist: ..."`, exit 1. It listens on CID 3 at LOCAL_PORT; every accepted connection goes to a thread pool
of `num_workers`, and holds its worker until either side closes, so connection N+1 is accepted and then waits,
silently upstream. Deviations: the listen is vsock over TCP (app.shared.vsock_tcp: 127.0.0.3:LOCAL_PORT), the
connections go to the emulator's HTTPS listener (StandinSettings.emulator_https_url) instead of REMOTE_ADDR,
and when every worker is busy it says so on stderr, once per wait, so the rehearsal can name the cause.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.shared import vsock_tcp
from rehearsal.standins import allowlist, host

PROXY_CID = 3  # vsock-proxy binds the parent's CID (proxy.rs VSOCK_PROXY_CID)
BUFFER_BYTES = 8192


def error_exit(message: str) -> int:
    print(f'Error: "{message}"', file=sys.stderr, flush=True)
    return 1


class Pool:
    """The upstream thread pool's behaviour: N workers, the rest queue; counts who waits."""

    def __init__(self, workers: int, target: tuple[str, int]) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vsock-proxy")
        self._workers, self._target = workers, target
        self._busy, self._lock = 0, threading.Lock()

    def submit(self, client: socket.socket) -> None:
        with self._lock:
            waiting = self._busy >= self._workers
            self._busy += 1
        if waiting:
            print(
                f"rehearsal stand-in vsock-proxy: all {self._workers} workers busy; "
                "an accepted connection waits for one to close",
                file=sys.stderr,
                flush=True,
            )
        self._executor.submit(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            with client, socket.create_connection(self._target) as server:
                _pump(client, server)
        except OSError as error:
            print(f"vsock-proxy: could not connect to {self._target}: {error}", file=sys.stderr, flush=True)
        finally:
            with self._lock:
                self._busy -= 1


def _pump(client: socket.socket, server: socket.socket) -> None:
    """Copy both ways until either side ends, as proxy.rs's transfer loop does."""
    while True:
        readable, _, _ = select.select([client, server], [], [])
        for source in readable:
            sink = server if source is client else client
            data = source.recv(BUFFER_BYTES)
            if not data:
                return
            sink.sendall(data)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vsock-proxy")
    parser.add_argument("local_port")
    parser.add_argument("remote_addr")
    parser.add_argument("remote_port")
    parser.add_argument("--config", default="/etc/nitro_enclaves/vsock-proxy.yaml")
    parser.add_argument("-w", "--num_workers", default="4")
    parser.add_argument("-4", "--ipv4", action="store_true")
    parser.add_argument("-6", "--ipv6", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if not args.local_port.isdigit():
        return error_exit("Local port is not valid")
    if not args.remote_port.isdigit() or int(args.remote_port) > 65535:
        return error_exit("Remote port is not valid")
    if not args.num_workers.isdigit():
        return error_exit("Number of workers is not valid")
    if int(args.num_workers) == 0:
        return error_exit("Number of workers must not be 0")
    try:
        text = host.path(args.config).read_text(encoding="utf-8")
        allowlist.check(text, args.remote_addr, int(args.remote_port))
    except OSError:
        return error_exit("Error at checking the allowlist: Could not open the file")
    except allowlist.AllowlistError as error:
        return error_exit(f"Error at checking the allowlist: {error}")
    emulator = urlsplit(host.settings()["emulator_https_url"])
    target = (emulator.hostname or "", emulator.port or 443)
    listener = socket.create_server(vsock_tcp.tcp_address(PROXY_CID, int(args.local_port)), backlog=128)
    pool = Pool(int(args.num_workers), target)
    print(
        f"rehearsal stand-in vsock-proxy: {args.remote_addr}:{args.remote_port} allowed; "
        f"{args.num_workers} workers; vsock {PROXY_CID}:{args.local_port} (TCP {listener.getsockname()[0]}) "
        f"-> {target[0]}:{target[1]}",
        file=sys.stderr,
        flush=True,
    )
    while True:
        client, _ = listener.accept()
        pool.submit(client)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

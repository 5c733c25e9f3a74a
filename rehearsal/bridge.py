"""A loopback bridge between two network namespaces: TCP ports of one namespace's 127.0.0.1 served on
another's, so a second host in a namespace of its own reaches the emulator, the SignalResource stand-in and
the KMS listener at the very URLs the first host uses (the same `AWS_ENDPOINT_URL`, the same
`https://localhost:<port>` the certificate names), and no address, veth or route is added anywhere.

The listening sockets are made inside the other namespace (rehearsal/nsjoin.py), the connections to the
services from this one; bytes are copied both ways, one thread per direction, until either side closes.
Run as `python -m rehearsal.bridge --netns PATH --ports P1,P2,...` from the namespace the services are in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
from collections.abc import Sequence

from rehearsal.nsjoin import inside

LOOPBACK = "127.0.0.1"
BUFFER = 65536


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass  # either side went away: the finally below closes what is left
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            with contextlib.suppress(OSError):
                sock.shutdown(how)


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((LOOPBACK, port))
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def listeners(netns: str, ports: Sequence[int]) -> list[socket.socket]:
    made = []
    with inside(netns):
        for port in ports:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((LOOPBACK, port))
            listener.listen(128)
            made.append(listener)
    return made


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rehearsal.bridge", description=__doc__)
    p.add_argument("--netns", required=True, help="the other namespace's file (/run/netns/NAME)")
    p.add_argument("--ports", required=True, help="comma-separated TCP ports of 127.0.0.1")
    args = p.parse_args(argv)
    ports = [int(port) for port in args.ports.split(",")]
    threads = [threading.Thread(target=_serve, args=(listener, port), daemon=True)
               for listener, port in zip(listeners(args.netns, ports), ports, strict=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    print(json.dumps({"bridged": ports, "into": args.netns}), flush=True)
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())

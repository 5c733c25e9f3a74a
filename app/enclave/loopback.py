"""Brings up `lo` inside a Nitro Enclave, which boots with it down (the egress proxy listens on it).

Done with one ioctl so the image needs no iproute2. Linux only; harmless if `lo` is already up.
"""

from __future__ import annotations

import fcntl
import socket
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = struct.Struct("16sH14x")


def bring_up_loopback(name: bytes = b"lo") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, IFREQ.pack(name, 0))
        _, flags = IFREQ.unpack(answer)
        if not flags & IFF_UP:
            fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, IFREQ.pack(name, flags | IFF_UP))

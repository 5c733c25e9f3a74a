"""Joining another network namespace from Python: setns(2) on the namespace's file (ctypes; Python 3.11 has
no os.setns). A socket belongs to the namespace of the thread that created it, and keeps it after the
thread moves on (network_namespaces(7)), which is what lets one process listen in one namespace and
connect in another."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

CLONE_NEWNET = 0x40000000


def setns(path: Path | str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(str(path), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns({path}): {os.strerror(errno)}")
    finally:
        os.close(fd)


@contextlib.contextmanager
def inside(path: Path | str) -> Iterator[None]:
    """The calling thread in the namespace at `path` for the block, back in its own after."""
    own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
    with open(own, "rb") as back:
        setns(path)
        try:
            yield
        finally:
            setns(f"/proc/self/fd/{back.fileno()}")

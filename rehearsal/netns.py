"""The rehearsal's network: one network namespace of its own, shared by the container and the host-side
stand-ins (emulator, IMDS, SignalResource, CodeBuild), so hosts and builds reach them on loopback and
169.254.169.254 without any address ever being added to this machine's own interfaces.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import TracebackType

IMDS_ADDRESS = "169.254.169.254"
NETNS_DIR = Path("/run/netns")


class NetnsError(RuntimeError):
    """`ip netns` refused a step (the message has its stderr)."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Namespace:
    """`with Namespace(name) as ns:` - created with `lo` up and the IMDS address on it; deleted on exit."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.name

    def __enter__(self) -> Namespace:
        if self.path.exists():  # left by a run that was killed: its processes are gone with it
            _ip("netns", "delete", self.name)
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "address", "add", f"{IMDS_ADDRESS}/32", "dev", "lo")
        except NetnsError:
            _ip("netns", "delete", self.name)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        _ip("netns", "delete", self.name)


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """`argv` run inside the namespace (the rehearsal re-runs itself there, so everything it starts is in).

    `nsenter --net` and not `ip netns exec`: the latter remounts /sys, hiding the cgroup mounts nspawn needs.
    """
    return ["nsenter", f"--net={NETNS_DIR / name}", "--", *argv]


def default_name() -> str:
    return f"nedemo-rehearsal-{os.getpid()}"

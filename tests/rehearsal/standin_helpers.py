"""A scratch root with the stand-ins installed, and a way to run them there as the rehearsed host would.

Each stand-in runs as a subprocess with `python -S` (no site-packages: they must need the stdlib only) and
REHEARSAL_STANDIN_ROOT pointing at the scratch root. No container, no network beyond 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from infra.build.context import SOURCE_DATE_EPOCH
from rehearsal.standins import MachineModel, StandinSettings, base_image, install_standins
from rehearsal.standins.host import ENV_ROOT, LIB_DIR
from rehearsal.standins.image_store import BASES, WHEELHOUSE

REPO_ROOT = Path(__file__).resolve().parents[2]
# What a host's bootstrap.sh installs (no Docker, no -devel: hosts build nothing), what the buildspec
# installs in the build container, and Docker, which comes with the CodeBuild image.
BOOTSTRAP_PACKAGES = (
    "aws-nitro-enclaves-cli",
    "python3.11",
    "python3.11-pip",
    "jq",
    "amazon-cloudwatch-agent",
)
BUILDSPEC_PACKAGES = ("aws-nitro-enclaves-cli", "aws-nitro-enclaves-cli-devel")
EVERY_PACKAGE = (*BOOTSTRAP_PACKAGES, "aws-nitro-enclaves-cli-devel", "docker")
RUN_TIMEOUT_S = 120.0
# The stand-ins' vsock over TCP binds 127.0.0.3 and 127.0.0.<CID>: all loopback on Linux, not elsewhere.
needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="vsock over TCP binds 127.0.0.<CID>: Linux only"
)
READY_TIMEOUT_S = 30.0


def settings(**overrides: object) -> StandinSettings:
    base = StandinSettings(
        region="us-east-1",
        emulator_https_url="https://127.0.0.1:9",
        venv_python=sys.executable,
        machine=MachineModel(),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def make_root(tmp_path: Path, standin_settings: StandinSettings | None = None) -> Path:
    """A root with what the Debian rootfs brings (python3.11, jq, ensurepip) and the stand-ins installed."""
    root = tmp_path / "root"
    for directory in ("etc", "usr/bin", "usr/lib/python3.11/ensurepip", "dev"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/group").write_text("root:x:0:\n")
    for program in ("usr/bin/python3.11", "usr/bin/jq"):
        (root / program).touch()
    install_standins(root, settings=standin_settings or settings())
    return root


def program(root: Path, name: str) -> Path:
    """A stand-in by its installed path (/usr/bin/dnf and what dnf installed), else by its module."""
    installed = root / name.lstrip("/")
    if installed.is_symlink():  # /usr/bin/dnf links to /usr/lib/rehearsal-standins inside the root
        target = Path(os.readlink(installed))
        return target if target.is_relative_to(root) else root / str(target).lstrip("/")
    return installed if installed.exists() else root / LIB_DIR.lstrip("/") / "rehearsal/standins" / name


def environment(
    root: Path, extra: Mapping[str, str] | None = None, *, drop: tuple[str, ...] = ()
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, ENV_ROOT: str(root), **(extra or {})}


def run(
    root: Path, name: str, *args: str, env: Mapping[str, str] | None = None, drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", str(program(root, name)), *args],
        env=environment(root, env, drop=drop),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def install_packages(root: Path, *names: str) -> None:
    done = run(root, "/usr/bin/dnf", "install", "-y", "-q", *(names or EVERY_PACKAGE))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def daemon(
    root: Path, name: str, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A long-running stand-in (dockerd, vsock-proxy), stopped at the end."""
    log = root / f"{Path(name).name}.log"
    with log.open("w") as output:
        child = subprocess.Popen(
            [sys.executable, "-S", str(program(root, name)), *args],
            env=environment(root, env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def accepts(address: tuple[str, int]) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
        return True
    return False


def answers(unix_socket: Path) -> bool:
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
        probe.connect(str(unix_socket))
        return True
    return False


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def copy_repo_app(destination: Path) -> Path:
    """The enclave's build context (the repo's app/), without bytecode caches."""
    shutil.copytree(REPO_ROOT / "app", destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


@contextlib.contextmanager
def short_tmp() -> Iterator[Path]:
    """A short scratch directory: unix socket paths (docker.sock) must fit in 108 bytes."""
    with tempfile.TemporaryDirectory(prefix="standin-", dir="/tmp") as scratch:
        yield Path(scratch)


@contextlib.contextmanager
def docker_daemon(root: Path) -> Iterator[None]:
    with daemon(root, "/usr/bin/dockerd"):
        wait_for(lambda: answers(root / "var/run/docker.sock"), "the docker stand-in's socket")
        yield


@functools.cache
def image_inputs() -> tuple[Path, Path]:
    """The python:3.11-slim stand-in layer and the enclave image's wheelhouse, as the rehearsal makes them
    (cached under .cache/rehearsal: debootstrap on first use, so root and Debian's mirror are needed)."""
    from rehearsal import python_base, rootfs, wheelhouse  # noqa: PLC0415 - only where a build runs
    from rehearsal.run import CACHE  # noqa: PLC0415

    debian = rootfs.base(CACHE, wheelhouse.ensure(CACHE))
    return python_base.ensure(CACHE, debian), wheelhouse.ensure_enclave(CACHE)


def provide_image_inputs(root: Path) -> None:
    """What the rehearsal binds into the build container: the base layer by its digest, the wheelhouse."""
    base, wheels = image_inputs()
    bases = root / BASES.lstrip("/")
    bases.mkdir(parents=True, exist_ok=True)
    (bases / base_image.REFERENCE.rsplit(":", 1)[1]).symlink_to(base)
    (root / WHEELHOUSE.lstrip("/")).symlink_to(wheels)


def build_enclave_image(
    root: Path, context: Path, dockerfile: Path | None = None, epoch: int = SOURCE_DATE_EPOCH
) -> str:
    recipe = str(dockerfile or context / "enclave/Dockerfile")
    tag = "nitro-enclave-demo-enclave:latest"
    if not (root / WHEELHOUSE.lstrip("/")).exists():
        provide_image_inputs(root)
    argv = ("build", "-q", "--build-arg", f"SOURCE_DATE_EPOCH={epoch}", "-f", recipe, "-t", tag, str(context))
    done = run(root, "/usr/bin/docker", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()

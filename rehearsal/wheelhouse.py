"""The wheelhouse: every Python distribution the rehearsed instance installs, fetched once on the host.

The real instance installs the project from PyPI (`pip install $SRC_DIR` in bootstrap.sh); the rehearsal's
container has no PyPI, so pip there reads this directory (bound read-only, `/etc/pip.conf` no-index). It holds
the project's pinned dependencies as pyproject.toml declares them, the build backend pip needs to build the
project itself, pip, and the AWS CLI v1 for the CLI's own venv.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

from infra.constants import REPO_ROOT

AWSCLI_VERSION = "1.46.2"
CONTAINER_WHEELHOUSE = "/var/cache/rehearsal-wheels"
BUILD_REQUIREMENTS = ("pip", "wheel")


class WheelhouseError(RuntimeError):
    """pip could not fetch a distribution the instance needs."""


def requirements() -> list[str]:
    """The project's runtime dependencies and build requirements (pinned in pyproject.toml), and the CLI."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return [
        *project["project"]["dependencies"],
        *project["build-system"]["requires"],
        *BUILD_REQUIREMENTS,
        f"awscli=={AWSCLI_VERSION}",
    ]


def ensure(cache: Path) -> Path:
    """cache/wheels-<hash of the requirements>, filled by `pip download` on first use."""
    wanted = requirements()
    key = hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
    wheels = cache / f"wheels-{key}"
    stamp = wheels / ".complete"
    if stamp.exists():
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheels), *wanted]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WheelhouseError(f"pip download failed: {done.stderr.strip()[-2000:]}")
    stamp.write_text("\n".join(wanted) + "\n", encoding="utf-8")
    return wheels


ENCLAVE_REQUIREMENTS = REPO_ROOT / "app" / "enclave" / "requirements.txt"
# The image's platform (python:3.11-slim: CPython 3.11 on glibc 2.36, x86_64), as requirements.txt's header
# gives it, with every older manylinux_2_N glibc 2.36 also runs (PEP 600): pip expands only the legacy
# manylinux2014/2010/1 names itself, so `--platform manylinux_2_36_x86_64` alone misses cbor2's _2_28 wheel.
ENCLAVE_PLATFORM = (
    *(arg for n in range(36, 4, -1) for arg in ("--platform", f"manylinux_2_{n}_x86_64")),
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
)  # fmt: skip


def ensure_enclave(cache: Path) -> Path:
    """cache/enclave-wheels-<hash of requirements.txt>: exactly the wheels the enclave image's
    requirements.txt pins by hash, for the image's platform, fetched once with `pip download
    --require-hashes` (a wheel that does not match its pin is never stored); the docker stand-in's RUN
    reads it instead of PyPI."""
    text = ENCLAVE_REQUIREMENTS.read_text(encoding="utf-8")
    wheels = cache / f"enclave-wheels-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
    if wheels.is_dir():  # renamed into place only once complete
        return wheels
    partial = wheels.with_name(f"{wheels.name}.partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--require-hashes", *ENCLAVE_PLATFORM, "--dest", str(partial),
        "--requirement", str(ENCLAVE_REQUIREMENTS),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WheelhouseError(f"pip download (enclave image) failed: {done.stderr.strip()[-2000:]}")
    partial.rename(wheels)
    return wheels

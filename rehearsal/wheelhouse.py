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

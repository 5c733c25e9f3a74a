"""The layout of the enclave image's base, `python:3.11-slim` (bookworm): one description, read by the docker
stand-in (which builds a layer laid out this way, rehearsal/python_base.py) and by the tests of the enclave
image's Cmd against the Nitro init's contract. Stdlib only.

Source: docker-library/python `3.11/slim-bookworm/Dockerfile` (commit 4f07059, the image's own published
Dockerfile):
- line 7 `FROM debian:bookworm-slim`: Debian 12 with merged /usr (/bin, /sbin, /lib, /lib64 are links into
  /usr); Debian's own python3 is not installed there, so /usr/bin and /bin hold no python at all.
- line 10 `ENV PATH /usr/local/bin:$PATH` over debian:bookworm-slim's PATH; line 15 `ENV LANG C.UTF-8`;
  lines 27-29 `ENV GPG_KEY`, `PYTHON_VERSION`, `PYTHON_SHA256`.
- lines 72-80 CPython's `./configure` (default prefix /usr/local, `--enable-shared`, `--with-ensurepip`) and
  line 97 `make install`: the interpreter /usr/local/bin/python3.11, the link python3 -> python3.11 (CPython's
  Makefile.pre.in `bininstall`), the stdlib in /usr/local/lib/python3.11, pip (ensurepip) in its
  site-packages with the scripts pip3 and pip3.11 in /usr/local/bin.
- lines 138-145: `for src in idle3 pip3 pydoc3 python3 python3-config` ... `ln -svT "$src"
  "/usr/local/bin/$dst"`: python -> python3, pip -> pip3, idle -> idle3, pydoc -> pydoc3,
  python-config -> python3-config.
- line 147 `CMD ["python3"]`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

UPSTREAM = "docker-library/python 3.11/slim-bookworm/Dockerfile (commit 4f07059)"
# Exactly the shipped Dockerfile's FROM: ECR Public's mirror of the Docker Official Image, by digest
# (tests/rehearsal/test_standins_docker.py holds the two equal).
REFERENCE = (
    "public.ecr.aws/docker/library/python:3.11-slim"
    "@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7"
)

INTERPRETER = "/usr/local/bin/python3.11"  # `make install` (line 97), default prefix
BIN_DIR = "/usr/local/bin"

# Links in /usr/local/bin: name -> target (relative, as `ln -s` made them).
LINKS: dict[str, str] = {
    "python3": "python3.11",  # CPython's `make install` (bininstall)
    "python": "python3",  # Dockerfile lines 138-145
    "pip": "pip3",  # Dockerfile lines 138-145
    "pydoc": "pydoc3",
    "idle": "idle3",
    "python-config": "python3-config",
}

# Every executable name of Python's in each directory of the base image (interpreter, links, scripts).
EXECUTABLES: dict[str, tuple[str, ...]] = {
    BIN_DIR: (
        "python3.11",
        "python3",
        "python",
        "pip3.11",
        "pip3",
        "pip",
        "pydoc3.11",
        "pydoc3",
        "pydoc",
        "idle3.11",
        "idle3",
        "idle",
        "python3.11-config",
        "python3-config",
        "python-config",
    ),
    "/usr/local/sbin": (),
    "/usr/bin": (),  # debian:bookworm-slim has no python (line 7); none is added there
    "/usr/sbin": (),
    "/bin": (),  # merged /usr: /bin -> usr/bin
    "/sbin": (),  # merged /usr: /sbin -> usr/sbin
}

# debian:bookworm-slim's PATH (its image config), then line 10's prefix.
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ENV: tuple[str, ...] = (
    f"PATH=/usr/local/bin:{DEBIAN_PATH}",  # line 10
    "LANG=C.UTF-8",  # line 15
    "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",  # line 27
    "PYTHON_VERSION=3.11.15",  # line 28
    "PYTHON_SHA256=272179ddd9a2e41a0fc8e42e33dfbdca0b3711aa5abf372d3f2d51543d09b625",  # line 29
)
CMD: tuple[str, ...] = ("python3",)  # line 147
MERGED_USR: dict[str, str] = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}


def _canonical(directory: str) -> str:
    """A directory of the base with merged /usr resolved (/bin -> /usr/bin)."""
    parts = PurePosixPath(directory).parts
    if len(parts) > 1 and parts[1] in MERGED_USR:
        return str(PurePosixPath("/", MERGED_USR[parts[1]], *parts[2:]))
    return directory


def has_executable(path: str) -> bool:
    """True when `path` (absolute) names one of Python's executables in the base image."""
    pure = PurePosixPath(path)
    directory = _canonical(str(pure.parent))
    return any(_canonical(d) == directory and pure.name in names for d, names in EXECUTABLES.items())


def lookup(name: str, path: str) -> str | None:
    """Where `execvp(name)` finds one of Python's executables with PATH=`path` in the base image (a name
    with a `/` is taken as it is, as execvp does), or None."""
    if "/" in name:
        return name if has_executable(name) else None
    for directory in path.split(":"):
        candidate = f"{directory.rstrip('/')}/{name}"
        if directory and has_executable(candidate):
            return candidate
    return None

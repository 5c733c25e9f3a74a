"""The layer standing in for the enclave image's base, `python:3.11-slim`, laid out as its own Dockerfile lays
it out (rehearsal/standins/base_image.py), made from Debian's packages: Docker Hub is not reachable here.

Recipe (each step the counterpart of a step of docker-library/python's 3.11/slim-bookworm/Dockerfile):
- debian:bookworm-slim (line 7): exactly the files dpkg lists for the packages the interpreter needs, with
  their Depends/Pre-Depends closure (libc, libssl3, zlib, libffi, libexpat, ..., dash, coreutils, findutils
  for RUN's /bin/sh, find and touch), taken from the cached debootstrapped root (rootfs.py), minus what the
  slim image's dpkg config excludes (docs, man pages, locales); merged /usr; the generated /etc files
  (passwd, group, CA bundle, ld.so.cache made by ldconfig).
- the runtime dependencies of lines 17-25 (ca-certificates, tzdata; netbase is not in the cached root).
- CPython (lines 31-136): Debian's python3.11 binary moved to /usr/local/bin/python3.11, so nothing named
  python is in /usr/bin or /bin; its stdlib stays in /usr/lib/python3.11, where the binary finds it (its
  landmark search walks up from /usr/local/bin); what `python3 -m ensurepip --upgrade` (run by `make
  install`) does, with Debian's bundled wheels, puts pip and setuptools where this interpreter's install
  scheme says (/usr/local/lib/python3.11/dist-packages, scripts in /usr/local/bin); .pyc files are removed
  as lines 102-106 remove them.
- /usr/bin/pydoc3.11 (Debian's python3.11 package) moved beside the interpreter as `make install` places it;
  Debian's pygettext3.11 removed (CPython installs none).
- the links of lines 138-145 for the names this layer has (python3 -> python3.11 as `make install` makes).
Debian's EXTERNALLY-MANAGED marker is removed: CPython's own install has none. Every difference from the real
base is a line of rehearsal/deviations.py. Cached under the cache directory, keyed by this recipe.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from rehearsal.standins import base_image

# What the interpreter, pip and the Dockerfile's RUN need, and the base's runtime dependencies (lines 17-25).
ROOT_PACKAGES = (
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "python3.11-venv",  # Debian's ensurepip, part of CPython's own stdlib
    "python3-pip-whl",  # the wheels Debian's ensurepip installs
    "python3-setuptools-whl",
    "base-files",
    "dash",
    "coreutils",
    "findutils",
    "ca-certificates",
    "tzdata",
)
# debian:bookworm-slim's /etc/dpkg/dpkg.cfg.d/docker (debuerreotype's slim variant): not unpacked.
SLIM_EXCLUDES = re.compile(r"^/usr/share/(doc|man|info|locale|lintian|linda|groff)/")
# Made by maintainer scripts, not listed by dpkg: taken from the debootstrapped root as they are.
GENERATED = (
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/nsswitch.conf",
    "etc/ld.so.conf",
    "etc/ssl/certs/ca-certificates.crt",
    "etc/localtime",
    "etc/timezone",
)
EMPTY_DIRS = ("proc", "sys", "dev", "tmp", "root", "run", "home")
DEBIAN_INTERPRETER = "usr/bin/python3.11"
# ensurepip's _run_pip sets it ("install" without --altinstall): pip then makes pip3 and pip3.11, no `pip`.
ENSUREPIP_ENV = {"ENSUREPIP_OPTIONS": "install"}
BUNDLED_WHEELS = "usr/share/python-wheels"  # python3-pip-whl, python3-setuptools-whl
EXTERNALLY_MANAGED = "usr/lib/python3.11/EXTERNALLY-MANAGED"
# Names of base_image.EXECUTABLES this layer does not have (Debian ships them in packages not taken here).
ABSENT: tuple[str, ...] = (
    "idle3.11",
    "idle3",
    "idle",
    "python3.11-config",
    "python3-config",
    "python-config",
)


class PythonBaseError(RuntimeError):
    """The base layer could not be made from the debootstrapped root."""


def _status(debian_root: Path) -> dict[str, list[list[str]]]:
    """Package -> its Depends and Pre-Depends, each a list of alternatives, from dpkg's status file."""
    packages: dict[str, list[list[str]]] = {}
    text = (debian_root / "var/lib/dpkg/status").read_text(encoding="utf-8")
    for paragraph in text.split("\n\n"):
        name = re.search(r"^Package: (\S+)", paragraph, re.MULTILINE)
        if not name or "Status: install ok installed" not in paragraph:
            continue
        depends = re.findall(r"^(?:Pre-)?Depends: (.*)$", paragraph, re.MULTILINE)
        packages[name.group(1)] = [
            [alt.split()[0].split(":")[0] for alt in clause.split("|")]
            for line in depends
            for clause in line.split(",")
        ]
    return packages


def closure(debian_root: Path, roots: Iterable[str] = ROOT_PACKAGES) -> list[str]:
    """`roots` and every package they depend on, as installed in `debian_root` (the first installed
    alternative of each clause)."""
    packages = _status(debian_root)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in packages:
            raise PythonBaseError(f"package {name} is not installed in {debian_root}")
        seen.add(name)
        for clause in packages[name]:
            installed = [alt for alt in clause if alt in packages]
            if installed:
                todo.append(installed[0])
    return sorted(seen)


def _listed_paths(debian_root: Path, package: str) -> list[str]:
    info = debian_root / "var/lib/dpkg/info"
    for name in (f"{package}.list", f"{package}:amd64.list"):
        if (info / name).is_file():
            lines = (info / name).read_text(encoding="utf-8").splitlines()
            return [line for line in lines if line not in ("", "/.") and not SLIM_EXCLUDES.match(line)]
    raise PythonBaseError(f"dpkg lists no files for {package}")


def _place(source: Path, target: Path) -> None:
    """One dpkg-listed path: a directory made, a link copied as a link, a file with its mode and mtime."""
    if target.is_symlink() or target.exists():
        return
    if source.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.readlink(source))
    elif source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copystat(source, target)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def cache_key(debian_root: Path) -> str:
    recipe = "|".join((debian_root.name, *ROOT_PACKAGES, Path(__file__).read_text(encoding="utf-8")))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _chroot(root: Path, command: list[str], log: Path, extra_env: dict[str, str]) -> None:
    env = {**extra_env, "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # as lines 125-126 export it
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ chroot {root} {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(
            [shutil.which("chroot") or "/usr/sbin/chroot", str(root), *command],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise PythonBaseError(f"{' '.join(command)} exited {done.returncode} (see {log})")


def _python(root: Path, debian_root: Path, log: Path) -> None:
    local_bin = root / base_image.BIN_DIR.lstrip("/")
    local_bin.mkdir(parents=True, exist_ok=True)
    (root / DEBIAN_INTERPRETER).rename(local_bin / "python3.11")
    (root / EXTERNALLY_MANAGED).unlink(missing_ok=True)
    pydoc = root / "usr/bin/pydoc3.11"  # `make install` puts it beside the interpreter, naming it
    script = pydoc.read_text(encoding="utf-8").split("\n", 1)[1]
    (local_bin / "pydoc3.11").write_text(f"#!{base_image.INTERPRETER}\n{script}", encoding="utf-8")
    (local_bin / "pydoc3.11").chmod(0o755)
    pydoc.unlink()
    (root / "usr/bin/pygettext3.11").unlink()  # Debian's; CPython's `make install` installs no pygettext
    (local_bin / "pydoc3").symlink_to("pydoc3.11")  # `make install` (bininstall)
    for name, target in base_image.LINKS.items():  # python3 first: `make install`, then lines 138-145
        present = name == "python3" or (local_bin / target).exists()
        if name not in ABSENT and not (local_bin / name).is_symlink() and present:
            (local_bin / name).symlink_to(target)
    subprocess.run(["ldconfig", "-r", str(root)], check=True)
    # What `ensurepip --upgrade` does (Debian's refuses to run for its system python): pip, run from its
    # own wheel, installs the bundled pip and setuptools wheels with no index.
    wheels = sorted(f"/{p.relative_to(root)}" for p in (root / BUNDLED_WHEELS).glob("*.whl"))
    pip = next(w for w in wheels if Path(w).name.startswith("pip-"))
    _chroot(
        root,
        [base_image.INTERPRETER, f"{pip}/pip", "install", "--no-index", "--no-compile", *wheels],
        log,
        ENSUREPIP_ENV,
    )
    for name, target in base_image.LINKS.items():  # pip -> pip3 exists now that pip3 does
        if name not in ABSENT and not (local_bin / name).is_symlink() and (local_bin / target).exists():
            (local_bin / name).symlink_to(target)
    for cache in sorted((root / "usr/local").rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)


def ensure(cache: Path, debian_root: Path) -> Path:
    """cache/python-base-<recipe hash>: the base layer, made on first use from `debian_root`."""
    key = cache_key(debian_root)
    ready = cache / f"python-base-{key}"
    if ready.is_dir():  # renamed into place only once complete
        return ready
    partial = cache / f"python-base-{key}.partial"
    log = cache / f"python-base-{key}.log"
    shutil.rmtree(partial, ignore_errors=True)
    log.write_text("", encoding="utf-8")
    partial.mkdir(parents=True)
    for link, target in base_image.MERGED_USR.items():
        (partial / target).mkdir(parents=True, exist_ok=True)
        (partial / link).symlink_to(target)
    for package in closure(debian_root):
        for path in _listed_paths(debian_root, package):
            _place(debian_root / path.lstrip("/"), partial / path.lstrip("/"))
    for path in GENERATED:
        _place(debian_root / path, partial / path)
    for directory in EMPTY_DIRS:
        (partial / directory).mkdir(exist_ok=True)
    (partial / "tmp").chmod(0o1777)
    (partial / "root").chmod(0o700)
    _python(partial, debian_root, log)
    partial.rename(ready)
    return ready

#!/usr/bin/env python3
"""The enclave image's build context as one normalized tar: the same bytes from any checkout of the same code.

`docker build` takes a tar on standard input as its context (docs.docker.com/build/concepts/context, "tarball
contexts"), and COPY keeps each file's mode and mtime from the context (docs.docker.com/reference/dockerfile,
COPY; owners become 0:0 without --chown). A directory context carries whatever the checkout left: mtimes of
the clone, modes from the umask, files an editor or Python dropped. This tar carries only the allow-listed
files (the three things app/enclave/Dockerfile COPYs), in sorted order, as USTAR entries with owner 0:0, no
owner names, mode 0644 for files and 0755 for directories, and mtime SOURCE_DATE_EPOCH; so its SHA-256 is a
function of the enclave code alone. `python3 infra/build/context.py write OUT` writes it and prints that
digest; `epoch` prints the fixed SOURCE_DATE_EPOCH that infra/build/build-eif.sh also gives the build.

Stdlib only, Python 3.9+: CodeBuild runs it with the image's own python3, not the project's venv.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

# 2026-12-01T00:00:00Z, fixed: every file of the context and every file the image build writes gets this
# mtime, so two builds of the same code agree however long apart they run. Not the commit time: CodeBuild
# builds from the CDK code asset, which has no git history, and the same code must measure the same.
SOURCE_DATE_EPOCH = 1796083200
APP_DIR = "app"
# What app/enclave/Dockerfile COPYs, relative to app/ (tests/infra/test_build_context.py checks the two agree,
# and that this is the file set local mode measures as PCR0, app/local/software_nsm.py, plus app/__init__.py).
FILES = ("__init__.py",)
TREES = ("enclave", "shared")
# Never in the context, even inside a tree: bytecode caches (app/.dockerignore and local mode skip them too).
SKIPPED_DIRS = ("__pycache__",)
SKIPPED_SUFFIXES = (".pyc",)
FILE_MODE = 0o644
DIR_MODE = 0o755


class ContextError(Exception):
    """A file the context cannot carry faithfully: a symlink, a special file, or a path USTAR cannot hold."""


def _skipped(relative: PurePosixPath) -> bool:
    return any(part in SKIPPED_DIRS for part in relative.parts) or relative.suffix in SKIPPED_SUFFIXES


def members(app: Path) -> list[PurePosixPath]:
    """Every directory and file of the context, relative to app/, sorted by path components."""
    found = {PurePosixPath(name) for name in FILES}
    for tree in TREES:
        root = app / tree
        if not root.is_dir():
            raise ContextError(f"{root} is not a directory")
        found.add(PurePosixPath(tree))
        found.update(PurePosixPath(p.relative_to(app).as_posix()) for p in root.rglob("*"))
    chosen = sorted((p for p in found if not _skipped(p)), key=lambda p: p.parts)
    for relative in chosen:
        path = app / relative
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise ContextError(f"{path}: only regular files and directories go into the context")
    return chosen


def _entry(app: Path, relative: PurePosixPath) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    path = app / relative
    info = tarfile.TarInfo(relative.as_posix())
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = SOURCE_DATE_EPOCH
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
        return info, None
    data = path.read_bytes()
    info.mode, info.size = FILE_MODE, len(data)
    return info, io.BytesIO(data)


def write(app: Path, output: Path) -> str:
    """Write the context tar of `app` to `output`; return its SHA-256 (hex)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for relative in members(app):
            try:
                tar.addfile(*_entry(app, relative))
            except ValueError as error:  # a name or size USTAR cannot hold
                raise ContextError(f"{relative}: {error}") from error
    data = buffer.getvalue()
    output.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="context.py", description="The enclave image's normalized build context."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write", help="write the context tar and print its SHA-256")
    writing.add_argument("output", type=Path)
    writing.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[2],
                         help="the source root holding app/ (default: this checkout)")  # fmt: skip
    commands.add_parser("epoch", help="print the fixed SOURCE_DATE_EPOCH")
    args = parser.parse_args(argv)
    if args.command == "epoch":
        print(SOURCE_DATE_EPOCH)
        return 0
    try:
        print(write(args.source / APP_DIR, args.output))
    except (ContextError, OSError) as error:
        print(f"context.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Stand-in for /usr/bin/docker: `docker build [-q] [--no-cache] [--build-arg K[=V]]... [-f F] -t TAG CTX`.

Contract (docs.docker.com/reference/cli/docker/buildx/build: `-q` prints only the image ID, `sha256:<hex>`;
`-f` names the Dockerfile, `-t` the tag, `name` meaning `name:latest`; `--build-arg K=V` sets a build arg and
`--build-arg K` takes K's value from the client's environment; `--no-cache` builds every step anew). CTX
`-` is a tar archive (plain, gzip, bzip2 or xz) read from standard input whose content is the whole context,
and `-f` then names a file inside it (docs.docker.com/build/concepts/context, tarball contexts). Buildx
forwards the client's $SOURCE_DATE_EPOCH as that build arg unless one is given (moby/buildkit
docs/build-repro.md). The client needs the daemon (docker.service, whose socket is /var/run/docker.sock),
else "Cannot connect to the Docker daemon ...", exit 1. It stores the files the Dockerfile's COPY lines bring
in (dockerfile.py) under the image store (image_store.py). It does not pull the base image or execute RUN
(it has no cache either, so --no-cache changes nothing): the software enclave runs the image's code with the
venv's python and packages, pinned to the same versions as the image's requirements.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import eif, host, image_store
from rehearsal.standins.dockerfile import DockerfileError, Recipe, ignore_rules, ignored, parse

SOCKET = "/var/run/docker.sock"


def _copy(recipe: Recipe, context: Path, rootfs: Path) -> None:
    rules = ignore_rules(context)
    for sources, dest in recipe.copies:
        for source in sources:
            origin = (context / source).resolve()
            if not origin.is_relative_to(context.resolve()) or not origin.exists():
                raise DockerfileError(f"COPY failed: file not found in build context: {source}")
            files = [p for p in origin.rglob("*") if p.is_file()] if origin.is_dir() else [origin]
            for file in files:
                relative = PurePosixPath(file.relative_to(context.resolve()).as_posix())
                if ignored(relative, rules):
                    continue
                if origin.is_dir():
                    target = PurePosixPath(dest) / file.relative_to(origin).as_posix()
                elif dest.endswith("/"):
                    target = PurePosixPath(dest) / file.name
                else:
                    target = PurePosixPath(dest)
                placed = rootfs / str(target).lstrip("/")
                placed.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, placed)


def build_args(given: list[str]) -> dict[str, str]:
    """`--build-arg K=V` and `--build-arg K` (K's value from the environment, if set there)."""
    values = {}
    for item in given:
        name, has_value, value = item.partition("=")
        if has_value:
            values[name] = value
        elif name in os.environ:
            values[name] = os.environ[name]
    if "SOURCE_DATE_EPOCH" in os.environ:
        values.setdefault("SOURCE_DATE_EPOCH", os.environ["SOURCE_DATE_EPOCH"])
    return values


def unpack_context(archive: bytes, destination: Path) -> None:
    """A tar context: only relative regular files and directories, never a link out of the context."""
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
            for member in tar.getmembers():
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                    raise DockerfileError(
                        f"the context archive holds {member.name!r}, which the stand-in refuses"
                    )
                target = destination / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                target.write_bytes(source.read() if source else b"")
    except tarfile.TarError as error:
        raise DockerfileError(f"the context on standard input is not a tar archive: {error}") from error


def build(dockerfile: Path, tag: str, context: Path, args: dict[str, str] | None = None) -> str:
    given = args or {}
    recipe = parse(dockerfile.read_text(encoding="utf-8"), given)
    unused = sorted(set(given) - set(recipe.args))
    if unused:
        print(f"[Warning] One or more build-args {unused} were not consumed", file=sys.stderr)
    scratch = image_store.store() / ".building"
    shutil.rmtree(scratch, ignore_errors=True)
    _copy(recipe, context, scratch / "rootfs")
    config = {"From": recipe.base, "Env": recipe.env, "WorkingDir": recipe.workdir, "Cmd": recipe.cmd,
              "Run (not executed by the stand-in)": recipe.runs,
              "Args (seen by RUN only, not in the image's config)": recipe.args}  # fmt: skip
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    digest.update(eif.content_digest(scratch / "rootfs").encode())
    image_id = f"sha256:{digest.hexdigest()}"
    host.write_json(scratch / "config.json", config)
    final = image_store.image_directory(image_id)
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    image_store.tag_image(tag, image_id)
    return image_id


def _build_from(args: argparse.Namespace) -> str:
    values = build_args(args.build_arg)
    if args.context != "-":
        context = Path(args.context)
        return build(Path(args.file) if args.file else context / "Dockerfile", args.tag, context, values)
    with tempfile.TemporaryDirectory(prefix="docker-context-") as scratch:
        context = Path(scratch)
        unpack_context(sys.stdin.buffer.read(), context)
        return build(context / (args.file or "Dockerfile"), args.tag, context, values)


def require_daemon() -> None:
    """Fail as the docker client does when nothing listens on the daemon's socket."""
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(host.path(SOCKET)))
    except OSError:
        host.fail(f"Cannot connect to the Docker daemon at unix://{SOCKET}. Is the docker daemon running?")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="docker")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build")
    build_parser.add_argument("-q", "--quiet", action="store_true")
    build_parser.add_argument("--no-cache", action="store_true")
    build_parser.add_argument("--build-arg", action="append", default=[])
    build_parser.add_argument("-f", "--file")
    build_parser.add_argument("-t", "--tag", required=True)
    build_parser.add_argument("context")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        host.fail(f"rehearsal stand-in docker: {' '.join(unknown)} is not supported here", 125)
    require_daemon()
    try:
        image_id = _build_from(args)
    except (DockerfileError, OSError) as error:
        host.fail(f"ERROR: failed to build: {error}")
    print(image_id if args.quiet else f"Successfully built {image_id}\nSuccessfully tagged {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

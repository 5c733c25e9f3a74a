#!/usr/bin/python3
"""Stand-in for /usr/bin/docker: `docker build [-q] [--no-cache] [--build-arg K[=V]]... [-f F] -t TAG CTX`.

Contract (docs.docker.com/reference/cli/docker/buildx/build: `-q` prints only the image ID, `sha256:<hex>`;
`-f` names the Dockerfile, `-t` the tag, `name` meaning `name:latest`; `--build-arg K=V` sets a build arg and
`--build-arg K` takes K's value from the client's environment; `--no-cache` builds every step anew). CTX
`-` is a tar archive (plain, gzip, bzip2 or xz) read from standard input whose content is the whole context,
and `-f` then names a file inside it (docs.docker.com/build/concepts/context, tarball contexts). Buildx
forwards the client's $SOURCE_DATE_EPOCH as that build arg unless one is given (moby/buildkit
docs/build-repro.md). The client needs the daemon (docker.service, whose socket is /var/run/docker.sock),
else "Cannot connect to the Docker daemon ...", exit 1.

The image's root filesystem is built as Docker builds it: the base image's files (FROM names the base by
digest; the stand-in knows one, base_image.REFERENCE, and refuses any other: it pulls nothing), then each
step in order: WORKDIR makes its directory, COPY brings in the files (dockerfile.py), and RUN executes its
text as `/bin/sh -c "<text>"` (the reference, RUN's shell form: "the command is run in a shell, which by
default is /bin/sh -c on Linux") in a chroot of the root being built, with /proc and a minimal /dev as
Docker mounts them, cwd the WORKDIR, and as environment the image's Env so far (the base's, then ENV)
over the build args the Dockerfile declared (ENV wins over an ARG of the same name). The config keeps Env,
Cmd, Entrypoint and WorkingDir as Docker's image config records them (`ARG` values are not kept).
Deviations (rehearsal/deviations.py): RUN has no network (Docker's has), so pip reads a wheelhouse through
PIP_NO_INDEX/PIP_FIND_LINKS added to RUN's environment, a copy on a tmpfs mounted for the RUN only
(WHEELHOUSE in image_store.py); no build cache (so --no-cache changes nothing); no layers (one tree).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import base_image, host, image_store
from rehearsal.standins.dockerfile import (
    Copy,
    DockerfileError,
    Run,
    Workdir,
    ignore_rules,
    ignored,
    parse,
)

SOCKET = "/var/run/docker.sock"


def _copy(step: Copy, context: Path, rootfs: Path) -> None:
    rules = ignore_rules(context)
    for source in step.sources:
        origin = (context / source).resolve()
        if not origin.is_relative_to(context.resolve()) or not origin.exists():
            raise DockerfileError(f"COPY failed: file not found in build context: {source}")
        files = [p for p in origin.rglob("*") if p.is_file()] if origin.is_dir() else [origin]
        for file in files:
            relative = PurePosixPath(file.relative_to(context.resolve()).as_posix())
            if ignored(relative, rules):
                continue
            if origin.is_dir():
                target = PurePosixPath(step.dest) / file.relative_to(origin).as_posix()
            elif step.dest.endswith("/"):
                target = PurePosixPath(step.dest) / file.name
            else:
                target = PurePosixPath(step.dest)
            placed = rootfs / str(target).lstrip("/")
            placed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, placed)  # COPY keeps the file's mode and mtime


def merge_env(env: list[str], added: tuple[str, ...] | list[str]) -> list[str]:
    """ENV over the Env so far: a key set again replaces its earlier value in place, as Docker records it."""
    merged = dict(item.split("=", 1) for item in env)
    for item in added:
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{key}={value}" for key, value in merged.items()]


# Inside the RUN's own mount namespace (unshare): a minimal /dev, the wheelhouse copied to a tmpfs, then
# `/bin/sh -c TEXT` in the root with cwd WORKDIR (unshare --root --wd: chroot, then chdir) and exactly the
# environment given (env -i). Arguments, never evaluated: $1 root, $2 wheelhouse, $3 its mount point inside
# the root, $4 WORKDIR, $5 the RUN's text, then the NAME=VALUE pairs.
RUN_SETUP = """set -e
root=$1 wheels=$2 mountpoint=$3 workdir=$4 text=$5; shift 5
mount -t tmpfs -o mode=0755,nosuid dev "$root/dev"
for node in null zero full random urandom tty; do
  : > "$root/dev/$node"; mount --bind "/dev/$node" "$root/dev/$node"
done
mount -t tmpfs -o mode=0755 rehearsal-wheelhouse "$root$mountpoint"
cp "$wheels"/*.whl "$root$mountpoint/"
exec "$(command -v env)" -i "$@" "$(command -v unshare)" --root="$root" --wd="$workdir" /bin/sh -c "$text"
"""
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WHEELHOUSE_MOUNT = "/run/rehearsal-wheelhouse"


def run_environment(step: Run, base_env: tuple[str, ...]) -> list[str]:
    """What RUN's process sees: the declared build args that have a value, then the image's Env so far
    (which wins), then pip's wheelhouse settings (a deviation: the stand-in's RUN has no PyPI)."""
    args = [f"{name}={value}" for name, value in step.args if value is not None]
    env = merge_env(merge_env(args, base_env), step.env)
    refused = [item.split("=", 1)[0] for item in env if not ENV_NAME.fullmatch(item.split("=", 1)[0])]
    if refused:  # stricter than Docker: each pair reaches env(1) as an argument, never as an option
        raise DockerfileError(f"RUN: variable names {refused} are not [A-Za-z_][A-Za-z0-9_]*")
    return merge_env(env, ("PIP_NO_INDEX=1", f"PIP_FIND_LINKS={WHEELHOUSE_MOUNT}"))


def _run(step: Run, rootfs: Path, workdir: str, environment: list[str], *, quiet: bool) -> None:
    if not (rootfs / "bin/sh").exists() or not (rootfs / "proc").is_dir() or not (rootfs / "dev").is_dir():
        raise DockerfileError(f"RUN {step.text[:80]}: the image has no /bin/sh, /proc and /dev to run it")
    wheels = image_store.wheelhouse()
    if not any(wheels.glob("*.whl")):
        raise DockerfileError(f"RUN needs the wheelhouse (no PyPI here) and {wheels} holds no wheel")
    mountpoint = rootfs / WHEELHOUSE_MOUNT.lstrip("/")
    parent_times = mountpoint.parent.stat()
    mountpoint.mkdir()
    argv = [
        "unshare", "--mount", "--pid", "--net", "--fork", f"--mount-proc={rootfs / 'proc'}",
        "/bin/sh", "-c", RUN_SETUP, "run-setup", str(rootfs), str(wheels), WHEELHOUSE_MOUNT, workdir,
        step.text, *environment,
    ]  # fmt: skip
    try:
        done = subprocess.run(  # noqa: S603 - the RUN's text goes in as an argument, never evaluated here
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", check=False
        )
    finally:
        mountpoint.rmdir()  # the mount point is the stand-in's, not the image's
        os.utime(mountpoint.parent, ns=(parent_times.st_atime_ns, parent_times.st_mtime_ns))
    if not quiet or done.returncode != 0:  # `-q` shows the build's output only when it fails
        sys.stderr.write(done.stdout)
    if done.returncode != 0:
        raise DockerfileError(
            f'process "/bin/sh -c {shlex.quote(step.text)[:200]}" did not complete successfully: '
            f"exit code: {done.returncode}"
        )


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


SCRATCH = "scratch"  # the reference: "an explicitly empty image", FROM scratch pulls nothing


def _from(reference: str, rootfs: Path) -> None:
    """The base image's files into `rootfs`: none for scratch, else the one base layer the store holds."""
    if reference == SCRATCH:
        rootfs.mkdir()
        return
    if reference != base_image.REFERENCE:
        raise DockerfileError(
            f"{reference}: the stand-in pulls nothing and holds only {base_image.REFERENCE}'s layer"
        )
    base = image_store.base_layer(reference)
    if base is None:
        raise DockerfileError(
            f"{reference}: the stand-in pulls nothing and {image_store.BASES} lacks its layer"
        )
    # cp -a: owners, modes, links and mtimes as the base has them (cp by name, as the stand-ins run tools)
    subprocess.run(["cp", "-a", f"{base}/.", str(rootfs)], check=True)  # noqa: S603, S607


def build(
    dockerfile: Path, tag: str, context: Path, args: dict[str, str] | None = None, *, quiet: bool = True
) -> str:
    given = args or {}
    recipe = parse(dockerfile.read_text(encoding="utf-8"), given)
    unused = sorted(set(given) - set(recipe.args))
    if unused:
        print(f"[Warning] One or more build-args {unused} were not consumed", file=sys.stderr)
    scratch = image_store.store() / ".building"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    rootfs = scratch / "rootfs"
    _from(recipe.base, rootfs)
    base_env, base_cmd = ([], []) if recipe.base == SCRATCH else (list(base_image.ENV), list(base_image.CMD))
    workdir = "/"
    for step in recipe.steps:
        if isinstance(step, Workdir):
            workdir = step.path
            (rootfs / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif isinstance(step, Copy):
            _copy(step, context, rootfs)
        else:
            _run(step, rootfs, workdir, run_environment(step, tuple(base_env)), quiet=quiet)
    config = {"Env": merge_env(base_env, recipe.env), "Cmd": recipe.cmd or base_cmd or None,
              "Entrypoint": None, "WorkingDir": recipe.workdir}  # fmt: skip
    history = {"From": recipe.base, "Steps": [repr(step) for step in recipe.steps]}
    digest = hashlib.sha256(json.dumps({**config, **history}, sort_keys=True).encode())
    digest.update(image_store.tree_digest(rootfs).encode())
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
        dockerfile = Path(args.file) if args.file else context / "Dockerfile"
        return build(dockerfile, args.tag, context, values, quiet=args.quiet)
    with tempfile.TemporaryDirectory(prefix="docker-context-") as scratch:
        context = Path(scratch)
        unpack_context(sys.stdin.buffer.read(), context)
        return build(context / (args.file or "Dockerfile"), args.tag, context, values, quiet=args.quiet)


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

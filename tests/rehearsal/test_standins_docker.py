"""docker stand-in: `docker build -q` makes the image's whole root (the base layer, what COPY brings in
honouring .dockerignore, what RUN does chrooted in it); it takes the tar context and build args
infra/build/build-eif.sh gives it, and the image runs the way the Nitro init runs it."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.local.software_nsm import measure_enclave_sources
from infra.build import context
from rehearsal.standins import base_image
from rehearsal.standins.image_store import WHEELHOUSE
from tests.rehearsal.standin_helpers import (
    REPO_ROOT,
    copy_repo_app,
    docker_daemon,
    environment,
    image_inputs,
    install_packages,
    make_root,
    program,
    provide_image_inputs,
    run,
    short_tmp,
)

BASE = base_image.REFERENCE
INIT_PATH = "PATH=/sbin:/usr/sbin:/bin:/usr/bin"  # aws-nitro-enclaves-sdk-bootstrap init/init.c


def _small_build(root: Path, scratch: Path, dockerfile: str, *args: str) -> CompletedText:
    """`docker build -q` of a Dockerfile of the test's over the directory `scratch/ctx` (made if absent)."""
    ctx = scratch / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    if not (root / WHEELHOUSE.lstrip("/")).exists():
        provide_image_inputs(root)
    return _docker(root, "build", "-q", *args, "-t", "small", str(ctx))


def test_copy_stores_the_copied_files_over_the_base_honouring_dockerignore() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        ctx = copy_repo_app(scratch / "ctx")
        (ctx / "shared/__pycache__").mkdir()
        (ctx / "shared/__pycache__/x.pyc").write_bytes(b"cache")
        with docker_daemon(root):
            done = _small_build(
                root, scratch, f"FROM {BASE}\nWORKDIR /opt/enclave\nCOPY shared/ ./app/shared/\n"
            )
        assert done.returncode == 0, done.stderr
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", done.stdout.strip())
        files, config = _stored(root, done.stdout.strip())
        copied = {f for f in files if f.startswith("opt/")}
        assert "opt/enclave/app/shared/transport.py" in copied
        assert not [f for f in copied if "__pycache__" in f]
        assert base_image.INTERPRETER.lstrip("/") in files  # the base's files are the image's too
        assert config["WorkingDir"] == "/opt/enclave"
        assert config["Cmd"] == list(base_image.CMD)  # the base's Cmd, no CMD of its own


def test_run_is_sh_c_in_the_image_with_workdir_env_over_args_and_declared_args_only() -> None:
    dockerfile = (
        f"FROM {BASE}\nARG X=from-arg\nARG Y\nENV X=from-env\nWORKDIR /w\n"
        'RUN echo "$0|$X|$Y|$(pwd)|$PATH|$LANG" > /seen && test ! -e /usr/bin/python3\n'
    )
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        with docker_daemon(root):
            done = _small_build(root, scratch, dockerfile, "--build-arg", "Y=given", "--build-arg", "Z=1")
        assert done.returncode == 0, done.stderr
        assert "build-args ['Z'] were not consumed" in done.stderr
        image = root / "var/lib/docker/rehearsal-images" / done.stdout.strip().removeprefix("sha256:")
        path = dict(e.split("=", 1) for e in base_image.ENV)["PATH"]
        assert (image / "rootfs/seen").read_text() == f"/bin/sh|from-env|given|/w|{path}|C.UTF-8\n"
        config = json.loads((image / "config.json").read_text())
        assert "X=from-env" in config["Env"]
        assert not [e for e in config["Env"] if e.startswith(("Y=", "Z="))]


def test_a_failing_run_fails_the_build_with_its_exit_code() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        with docker_daemon(root):
            done = _small_build(root, scratch, f"FROM {BASE}\nRUN echo shown-on-failure && exit 3\n")
        assert done.returncode == 1
        assert "did not complete successfully: exit code: 3" in done.stderr
        assert "shown-on-failure" in done.stderr


def test_a_run_environment_name_that_env_could_read_as_an_option_is_refused() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        with docker_daemon(root):
            done = _small_build(root, scratch, f"FROM {BASE}\nENV -u=PATH\nRUN true\n")
        assert done.returncode == 1
        assert "variable names ['-u'] are not" in done.stderr


def test_a_base_image_the_stand_in_does_not_hold_is_refused() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        with docker_daemon(root):
            done = _small_build(root, scratch, "FROM python:3.11-slim\nRUN true\n")
        assert done.returncode == 1
        assert "the stand-in pulls nothing" in done.stderr


def _image_env(config: dict[str, Any]) -> list[str]:
    """The image's Env with the init's PATH in place of the image's own, as the Nitro init looks it up."""
    return [e for e in config["Env"] if not e.startswith("PATH=")] + [INIT_PATH]


def test_the_real_dockerfile_over_the_real_context_makes_an_image_that_runs_as_the_init_runs_it() -> None:
    """docker build of app/enclave/Dockerfile over infra/build/context.py's tar, as build-eif.sh runs it:
    the RUN's pip installs the pinned wheels where the base's interpreter finds them; the image imports its
    code and packages chrooted, with cwd / and only its Env; a bare `python` is not on the init's PATH."""
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        provide_image_inputs(root)
        epoch = f"SOURCE_DATE_EPOCH={context.SOURCE_DATE_EPOCH}"
        args = ("build", "-q", "--no-cache", "--build-arg", epoch, "-f", "enclave/Dockerfile", "-t", "x", "-")
        with docker_daemon(root):
            done = _docker(root, *args, stdin=_context_tar(scratch))
            again = _docker(root, *args, stdin=_context_tar(scratch))
        assert done.returncode == 0, done.stderr
        assert "not consumed" not in done.stderr
        assert again.stdout == done.stdout  # same context, same args: same image
        files, config = _stored(root, done.stdout.strip())
        assert "opt/enclave/app/enclave/server.py" in files
        assert not [f for f in files if f.endswith(".pyc")]
        assert config["Cmd"] == ["/usr/local/bin/python3.11", "-m", "app.enclave"]
        assert config["Env"][: len(base_image.ENV)] == list(base_image.ENV)
        assert "PYTHONPATH=/opt/enclave" in config["Env"]
        assert not [e for e in config["Env"] if e.startswith(("SOURCE_DATE_EPOCH", "PIP_"))]
        rootfs = (
            root / "var/lib/docker/rehearsal-images" / done.stdout.strip().removeprefix("sha256:") / "rootfs"
        )
        newer = [f for f in files if (rootfs / f).lstat().st_mtime > context.SOURCE_DATE_EPOCH]
        assert not newer  # the RUN's clamp reached every file it and COPY wrote
        imports = "import os, app.enclave, cryptography, cbor2, asn1crypto; print(os.getcwd())"
        chroot = ["env", "-i", *_image_env(config), "chroot", str(rootfs)]
        started = subprocess.run(
            [*chroot, *config["Cmd"][:1], "-c", imports], capture_output=True, text=True, check=False
        )
        assert started.returncode == 0, started.stderr
        assert started.stdout == "/\n"
        bare = subprocess.run(
            [*chroot, "/bin/sh", "-c", "command -v python || command -v python3"], check=False
        )
        assert bare.returncode != 0  # neither is on the init's PATH


def test_a_wheel_that_does_not_match_its_pinned_hash_fails_the_build() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        _, wheels = image_inputs()
        tampered = scratch / "wheels"
        shutil.copytree(wheels, tampered)
        six = next(tampered.glob("six-*.whl"))
        six.write_bytes(six.read_bytes() + b"\0")  # still a zip; not the pinned bytes
        provide_image_inputs(root)
        (root / WHEELHOUSE.lstrip("/")).unlink()
        (root / WHEELHOUSE.lstrip("/")).symlink_to(tampered)
        epoch = f"SOURCE_DATE_EPOCH={context.SOURCE_DATE_EPOCH}"
        args = ("build", "-q", "--build-arg", epoch, "-f", "enclave/Dockerfile", "-t", "x", "-")
        with docker_daemon(root):
            done = _docker(root, *args, stdin=_context_tar(scratch))
        assert done.returncode == 1
        assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stderr
        assert "six" in done.stderr


def test_without_the_daemon_the_client_says_so(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    install_packages(root, "docker")
    done = run(root, "/usr/bin/docker", "build", "-q", "-t", "x", str(tmp_path))
    assert done.returncode == 1
    assert "Cannot connect to the Docker daemon" in done.stderr


def test_an_instruction_it_cannot_build_is_refused_by_name() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        (scratch / "Dockerfile").write_text("FROM scratch\nADD https://example.com/x /x\n")
        with docker_daemon(root):
            done = run(root, "/usr/bin/docker", "build", "-q", "-t", "x", str(scratch))
        assert done.returncode == 1
        assert "ADD is not supported" in done.stderr


def _docker(root: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> CompletedText:
    """The stand-in client with bytes on standard input (a tar context), as `docker build - < ctx.tar`."""
    done = subprocess.run(
        [sys.executable, "-S", str(program(root, "/usr/bin/docker")), *args],
        env=environment(root, env, drop=("SOURCE_DATE_EPOCH",)),
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return CompletedText(done.returncode, done.stdout.decode(), done.stderr.decode())


@dataclass(frozen=True)
class CompletedText:
    returncode: int
    stdout: str
    stderr: str


def _context_tar(scratch: Path) -> bytes:
    context.write(REPO_ROOT / "app", scratch / "context.tar")
    return (scratch / "context.tar").read_bytes()


def _stored(root: Path, image_id: str) -> tuple[set[str], dict[str, Any]]:
    directory = root / "var/lib/docker/rehearsal-images" / image_id.removeprefix("sha256:")
    files = {
        p.relative_to(directory / "rootfs").as_posix()
        for p in (directory / "rootfs").rglob("*")
        if p.is_file()
    }
    return files, json.loads((directory / "config.json").read_text())


def test_buildx_forwards_the_clients_source_date_epoch_to_run_and_not_into_the_config() -> None:
    dockerfile = f'FROM {BASE}\nARG SOURCE_DATE_EPOCH\nRUN echo "$SOURCE_DATE_EPOCH" > /epoch\n'
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        provide_image_inputs(root)
        (scratch / "ctx").mkdir()
        (scratch / "ctx/Dockerfile").write_text(dockerfile)
        with docker_daemon(root):
            done = _docker(
                root, "build", "-q", "-t", "x", str(scratch / "ctx"), env={"SOURCE_DATE_EPOCH": "7"}
            )
        assert done.returncode == 0, done.stderr
        image = root / "var/lib/docker/rehearsal-images" / done.stdout.strip().removeprefix("sha256:")
        assert (image / "rootfs/epoch").read_text() == "7\n"
        _, config = _stored(root, done.stdout.strip())
        assert not [e for e in config["Env"] if e.startswith("SOURCE_DATE_EPOCH")]


@pytest.mark.parametrize(
    ("dockerfile", "refusal"),
    [
        ("ARG X=1\nFROM scratch\n", "before FROM (global scope) is not supported"),
        ("FROM scratch\nARG X\nCOPY $X /x\n", "variable substitution is not supported"),
        ("FROM scratch\nARG A B\n", "one `ARG name[=default]` per line"),
    ],
)
def test_what_the_stand_in_cannot_substitute_is_refused_by_name(dockerfile: str, refusal: str) -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        (scratch / "Dockerfile").write_text(dockerfile)
        with docker_daemon(root):
            done = run(root, "/usr/bin/docker", "build", "-q", "-t", "x", str(scratch))
        assert done.returncode == 1
        assert refusal in done.stderr


def test_a_context_on_stdin_that_is_no_tar_or_escapes_is_refused() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        escaping = io.BytesIO()
        with tarfile.open(fileobj=escaping, mode="w") as tar:
            tar.addfile(tarfile.TarInfo("../outside"), io.BytesIO(b""))
        with docker_daemon(root):
            not_tar = _docker(root, "build", "-t", "x", "-", stdin=b"FROM scratch\n")
            escapes = _docker(root, "build", "-t", "x", "-", stdin=escaping.getvalue())
        assert not_tar.returncode == 1
        assert "is not a tar archive" in not_tar.stderr
        assert escapes.returncode == 1
        assert "'../outside'" in escapes.stderr


def test_build_eif_sh_against_the_stand_ins_measures_what_local_mode_measures() -> None:
    """infra/build/build-eif.sh as CodeBuild runs it, with the docker and nitro-cli stand-ins as the tools:
    its PCR0 is local mode's measurement of this checkout's enclave files, through the normalized context."""
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker", "aws-nitro-enclaves-cli", "aws-nitro-enclaves-cli-devel")
        provide_image_inputs(root)
        tools = scratch / "bin"
        tools.mkdir()
        for name in ("docker", "nitro-cli"):
            wrapper = tools / name
            wrapper.write_text(
                f'#!/bin/sh\nexec "{sys.executable}" -S "{program(root, "/usr/bin/" + name)}" "$@"\n'
            )
            wrapper.chmod(0o755)
        env = {**environment(root, {"HOME": str(scratch / "home")}), "PATH": f"{tools}:{os.environ['PATH']}"}
        with docker_daemon(root):
            done = subprocess.run(
                ["bash", str(REPO_ROOT / "infra/build/build-eif.sh"), str(scratch / "out")],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        assert done.returncode == 0, done.stderr
        measurements = json.loads((scratch / "out/measurements.json").read_text())["Measurements"]
        assert measurements["PCR0"] == measure_enclave_sources(REPO_ROOT).hex()
        assert (scratch / "out/enclave.eif").stat().st_size > 0


def test_the_stand_in_holds_exactly_the_base_the_shipped_dockerfile_names() -> None:
    # The docker stand-in refuses any FROM but base_image.REFERENCE: it must be the shipped one, exactly.
    dockerfile = Path(__file__).resolve().parents[2] / "app/enclave/Dockerfile"
    (from_line,) = [line for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    assert from_line.split()[1] == base_image.REFERENCE

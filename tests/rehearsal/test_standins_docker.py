"""docker stand-in: `docker build -q` stores exactly what the Dockerfile COPYs, honouring .dockerignore; it
takes the tar context and build args infra/build/build-eif.sh gives it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.local.software_nsm import measure_enclave_sources
from infra.build import context
from tests.rehearsal.standin_helpers import (
    REPO_ROOT,
    build_enclave_image,
    copy_repo_app,
    docker_daemon,
    environment,
    install_packages,
    make_root,
    program,
    run,
    short_tmp,
)


def test_build_prints_an_image_id_and_stores_only_the_copied_files() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        context = copy_repo_app(scratch / "app")
        (context / "shared/__pycache__").mkdir()
        (context / "shared/__pycache__/x.pyc").write_bytes(b"cache")
        with docker_daemon(root):
            image_id = build_enclave_image(root, context)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
        rootfs = root / "var/lib/docker/rehearsal-images" / image_id.removeprefix("sha256:") / "rootfs"
        files = {p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*") if p.is_file()}
        assert "opt/enclave/requirements.txt" in files
        assert "opt/enclave/app/enclave/server.py" in files
        assert "opt/enclave/app/shared/transport.py" in files
        assert not [f for f in files if "/local/" in f or "/parent/" in f or "__pycache__" in f]
        config = json.loads(rootfs.parent.joinpath("config.json").read_text())
        assert config["Cmd"] == ["/usr/local/bin/python3.11", "-m", "app.enclave"]
        assert config["WorkingDir"] == "/opt/enclave"


def test_the_same_context_gives_the_same_image_id() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        context = copy_repo_app(scratch / "app")
        with docker_daemon(root):
            assert build_enclave_image(root, context) == build_enclave_image(root, context)


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


def test_a_tar_context_on_stdin_with_the_dockerfile_inside_it_and_a_build_arg() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
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
        assert "opt/enclave/requirements.txt" in files
        assert config["Args (seen by RUN only, not in the image's config)"] == {
            "SOURCE_DATE_EPOCH": str(context.SOURCE_DATE_EPOCH)
        }
        assert not [e for e in config["Env"] if e.startswith("SOURCE_DATE_EPOCH")]


def test_buildx_forwards_the_clients_source_date_epoch_and_warns_of_an_unused_arg() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        args = ("build", "-q", "--build-arg", "UNUSED=1", "-f", "enclave/Dockerfile", "-t", "x", "-")
        with docker_daemon(root):
            done = _docker(root, *args, stdin=_context_tar(scratch), env={"SOURCE_DATE_EPOCH": "7"})
        assert done.returncode == 0, done.stderr
        assert "build-args ['UNUSED'] were not consumed" in done.stderr
        _, config = _stored(root, done.stdout.strip())
        assert config["Args (seen by RUN only, not in the image's config)"] == {"SOURCE_DATE_EPOCH": "7"}


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

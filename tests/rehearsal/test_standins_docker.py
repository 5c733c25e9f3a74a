"""docker stand-in: `docker build -q` stores exactly what the Dockerfile COPYs, honouring .dockerignore."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.rehearsal.standin_helpers import (
    build_enclave_image,
    copy_repo_app,
    docker_daemon,
    install_packages,
    make_root,
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
        assert config["Cmd"] == ["python", "-m", "app.enclave"]
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

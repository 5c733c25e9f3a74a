"""`docker version` as the buildspec runs it: client, then server when the daemon answers, else the
client's "Cannot connect" and exit 1 (docs.docker.com/reference/cli/docker/version); `docker build` still
reaches the docker stand-in proper."""

from __future__ import annotations

from pathlib import Path

from tests.rehearsal.standin_helpers import docker_daemon, install_packages, make_root, run, short_tmp


def test_docker_version_needs_the_daemon() -> None:
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        refused = run(root, "/usr/bin/docker", "version")
        assert refused.returncode == 1
        assert "Client:" in refused.stdout
        assert "Cannot connect to the Docker daemon at unix:///var/run/docker.sock" in refused.stderr
        with docker_daemon(root):
            answered = run(root, "/usr/bin/docker", "version")
        assert answered.returncode == 0
        assert "Server:" in answered.stdout


def test_other_commands_are_the_docker_stand_ins(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    install_packages(root, "docker")
    done = run(root, "/usr/bin/docker", "push", "x")
    assert done.returncode == 2  # argparse of docker_cli.py: no such command
    assert "invalid choice: 'push'" in done.stderr


def test_docker_version_format_renders_the_server_fields_build_eif_sh_reads() -> None:
    # The modelled daemon: CodeBuild's AL2023 standard 5.0 image, Docker 28.5.2, minimum API 1.24.
    template = "{{.Server.Version}} {{.Server.MinAPIVersion}}"
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root, "docker")
        down = run(root, "/usr/bin/docker", "version", "--format", template)
        assert down.returncode == 1
        assert "Cannot connect to the Docker daemon" in down.stderr
        with docker_daemon(root):
            answered = run(root, "/usr/bin/docker", "version", "--format", template)
            other = run(root, "/usr/bin/docker", "version", "--format", "{{.Client.Os}}")
        assert (answered.returncode, answered.stdout) == (0, "28.5.2 1.24\n")
        assert other.returncode == 125
        assert "is not supported here" in other.stderr

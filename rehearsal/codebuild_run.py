"""One CodeBuild build of the rehearsal: a build container made for it, the source put in, the buildspec run.

The build container is the rehearsal's Debian root with the build tools layer (rootfs.builder_layer: the
venv the nitro-cli stand-in measures with) under an overlay of its own, so each build starts from the same
image and nothing of one build reaches the next, as with CodeBuild's fresh container per build. The
stand-ins are installed into it (dnf installs nitro-cli there, as the buildspec asks; Docker is part of the
image, as on CodeBuild's standard image). The source (an S3 zip, as the project's `Source`) is unpacked at
CODEBUILD_SRC_DIR. Then `systemd-nspawn` (not booted: CodeBuild's container has no init either) runs the
agent stand-in (rehearsal/standins/codebuild_agent.py) in the rehearsal's network namespace, so the build's
AWS calls reach the emulator on loopback. What the docker stand-in needs and a real build pulls from the
network is bound in read-only (Machine.binds): the python:3.11-slim stand-in layer (rehearsal/python_base.py)
under the image store's bases by its digest, and the enclave image's wheelhouse, where RUN's pip reads it.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal import buildspec
from rehearsal.standins import StandinSettings, install_standins
from rehearsal.standins.host import LIB_DIR

SRC_DIR = "/codebuild/output/src1/src"
PLAN = "/codebuild/plan.json"
RESULT = "/codebuild/result.json"
LOG = "/codebuild/build.log"
MEASURE_PYTHON = "/opt/rehearsal/measure-venv/bin/python"
IMAGE_PACKAGES = ("docker",)  # what aws/codebuild/amazonlinux-x86_64-standard:5.0 ships that we use
DOCKERD = ("/usr/bin/dockerd",)
DOCKER_SOCKET = "/var/run/docker.sock"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Machine:
    """Where builds run: the image's layers (top first), the namespace, the scratch space, the region, and
    what is bound read-only into every build container (host directory, path inside)."""

    lower_dirs: Sequence[Path]
    netns: Path
    work_dir: Path
    region: str
    binds: Sequence[tuple[Path, str]] = ()


@dataclass(frozen=True)
class BuildRequest:
    build_id: str
    build_number: int
    project: Mapping[str, Any]  # the project as the config file gives it (see codebuild.py)
    env_override: Mapping[str, str]
    buildspec_override: str | None
    fetch_source: Callable[[str], bytes]  # "bucket/key" -> the zip's bytes
    extra_env: Mapping[str, str]  # endpoints and the container credentials' URI (rehearsal only)


class Overlay:
    """`with Overlay(lower_dirs, dir) as root:` a fresh writable root over the image; the upper dir stays."""

    def __init__(self, lower_dirs: Sequence[Path], directory: Path) -> None:
        self.lower_dirs, self.directory = lower_dirs, directory
        self.root = directory / "root"

    def __enter__(self) -> Path:
        upper, work = self.directory / "upper", self.directory / "work"
        for path in (upper, work, self.root):
            path.mkdir(parents=True, exist_ok=True)
        lower = ":".join(str(p) for p in self.lower_dirs)
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mount = ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)]
        subprocess.run(mount, check=True)  # noqa: S603 - mount(8) by name, as root, by design
        return self.root

    def __exit__(self, *_: object) -> None:
        subprocess.run(["umount", "--lazy", str(self.root)], check=False)  # noqa: S603, S607 - as mount


def read_buildspec(project: Mapping[str, Any], override: str | None, src: Path) -> str:
    """Inline YAML, or a path relative to CODEBUILD_SRC_DIR, or buildspec.yml at the source's root."""
    chosen = override or project.get("buildspec") or "buildspec.yml"
    if "\n" in chosen:
        return str(chosen)
    path = src / chosen
    if not path.is_file():
        raise buildspec.BuildspecError(f"YAML_FILE_ERROR: no buildspec at {chosen} in the source")
    return path.read_text(encoding="utf-8")


def built_in_env(request: BuildRequest, region: str) -> dict[str, str]:
    project = request.project
    return {
        "PATH": PATH,
        "HOME": "/root",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "CODEBUILD_BUILD_ID": request.build_id,
        "CODEBUILD_BUILD_ARN": f"{project['arn'].replace(':project/', ':build/', 1).rsplit('/', 1)[0]}/"
        f"{request.build_id}",
        "CODEBUILD_BUILD_NUMBER": str(request.build_number),
        "CODEBUILD_BUILD_IMAGE": str(project.get("image", "")),
        "CODEBUILD_SRC_DIR": SRC_DIR,
        "CODEBUILD_INITIATOR": "rehearsal",
        "CODEBUILD_LOG_PATH": request.build_id.split(":", 1)[1],
        **request.extra_env,
    }


def prepare(root: Path, request: BuildRequest, machine: Machine) -> dict[str, Any]:
    """Stand-ins, source and plan into the build root; back: the plan."""
    settings = StandinSettings(region=machine.region, emulator_https_url="", venv_python=MEASURE_PYTHON)
    install_standins(root, settings=settings)
    src = root / SRC_DIR.lstrip("/")
    src.mkdir(parents=True, exist_ok=True)
    source = request.project.get("source", {})
    if source.get("type") == "S3":
        archive = root / "codebuild" / "source.zip"
        archive.write_bytes(request.fetch_source(source["location"]))
        with zipfile.ZipFile(archive) as unpacked:
            unpacked.extractall(src)
    spec = buildspec.parse(read_buildspec(request.project, request.buildspec_override, src))
    project_env = {v["name"]: v["value"] for v in request.project.get("environmentVariables", [])}
    env = buildspec.environment(
        spec, project_env, request.env_override, built_in_env(request, machine.region)
    )
    privileged = bool(request.project.get("privilegedMode"))
    plan = buildspec.agent_plan(
        spec, env, src_dir=SRC_DIR, scratch_dir="/codebuild/scratch", result=RESULT, log=LOG,
        daemons=[list(DOCKERD)] if privileged else [], daemon_sockets=[DOCKER_SOCKET] if privileged else [],
    )  # fmt: skip
    (root / PLAN.lstrip("/")).write_text(json.dumps(plan, indent=2), encoding="utf-8")
    return plan


def container_command(root: Path, machine: Machine) -> list[str]:
    """The image's own packages (Docker), then the agent, in the build container."""
    agent = f"{LIB_DIR}/rehearsal/standins/codebuild_agent.py"
    script = f"/usr/bin/dnf install -y -q {' '.join(IMAGE_PACKAGES)} && exec /usr/bin/python3 {agent} {PLAN}"
    return [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--as-pid2",
        f"--directory={root}", f"--network-namespace-path={machine.netns}",
        f"--machine=codebuild-{root.parent.name[:40]}",
        *(f"--bind-ro={source}:{inside}" for source, inside in machine.binds), "/bin/sh", "-c", script,
    ]  # fmt: skip


def read_result(root: Path) -> dict[str, Any]:
    path = root / RESULT.lstrip("/")
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded

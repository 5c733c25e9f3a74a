"""The shipped enclave image against how Nitro starts it (rehearsal/standins/nitro_init.py): nitro-cli keeps
only Cmd and Env; the init runs Cmd[0] found on its own PATH, with cwd / and only the image's Env. The base
image's layout is python:3.11-slim's (rehearsal/standins/base_image.py). Both old forms the rehearsal can
put back (`--revert enclave-cmd-workdir`, `--revert enclave-cmd-bare-interpreter`) must fail here too."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from rehearsal import blockers
from rehearsal.standins import base_image, dockerfile, nitro_init

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / blockers.ENCLAVE_DOCKERFILE


def _image_config(text: str) -> dict[str, object]:
    """The image config `docker build` would record: the base's Env then ours, our Cmd and WORKDIR."""
    recipe = dockerfile.parse(text)
    env = dict(item.split("=", 1) for item in base_image.ENV)
    env |= dict(item.split("=", 1) for item in recipe.env)
    return {"Cmd": recipe.cmd, "Env": [f"{k}={v}" for k, v in env.items()], "WorkingDir": recipe.workdir}


def _copied_files(text: str) -> set[str]:
    """Where each COPY of a single file lands in the image (directories copy trees; files are enough here)."""
    recipe = dockerfile.parse(text)
    return {str(PurePosixPath(dest)) for sources, dest in recipe.copies if not sources[0].endswith("/")}


def _module_search_path(kept: nitro_init.KeptConfig) -> list[str]:
    """`python -m` puts the cwd first (the init's /), then PYTHONPATH from the environment it was given."""
    env = dict(item.split("=", 1) for item in nitro_init.exec_environment(kept.env))
    return [nitro_init.INIT_CWD, *(p for p in env.get("PYTHONPATH", "").split(":") if p)]


def problems(text: str) -> list[str]:
    """Why the image's command would not start under the Nitro init; empty when it would."""
    kept = nitro_init.kept_config(_image_config(text))
    found = []
    try:
        nitro_init.lookup(kept.cmd[0], base_image.has_executable)
    except FileNotFoundError as error:
        found.append(nitro_init.exec_failure_line(kept.cmd[0], error))
    if kept.cmd[1:3] == ("-m", "app.enclave"):
        package = [f"{PurePosixPath(d) / 'app/__init__.py'}" for d in _module_search_path(kept)]
        if not set(package) & _copied_files(text):
            found.append("No module named 'app'")
    else:
        found.append(f"the Cmd does not run app.enclave: {kept.cmd}")
    return found


def test_nitro_cli_keeps_cmd_and_env_and_drops_workdir() -> None:
    kept = nitro_init.kept_config(_image_config(DOCKERFILE.read_text()))
    assert kept.cmd == ("/usr/local/bin/python3.11", "-m", "app.enclave")
    assert "PYTHONPATH=/opt/enclave" in kept.env
    assert not [item for item in kept.env if item.startswith("PWD=")]


def test_entrypoint_counts_only_without_cmd() -> None:
    both = {"Cmd": ["a"], "Entrypoint": ["b"], "Env": ["X=1"], "WorkingDir": "/w"}
    assert nitro_init.kept_config(both) == nitro_init.KeptConfig(("a",), ("X=1",))
    assert nitro_init.kept_config({"Entrypoint": ["b"]}) == nitro_init.KeptConfig(("b",), ())
    with pytest.raises(nitro_init.UnsupportedEntryPoint):
        nitro_init.kept_config({"Env": ["X=1"], "WorkingDir": "/w"})


def test_the_init_looks_up_on_its_own_path_not_the_images() -> None:
    assert nitro_init.lookup(base_image.INTERPRETER, base_image.has_executable) == base_image.INTERPRETER
    with pytest.raises(FileNotFoundError):
        nitro_init.lookup("python", base_image.has_executable)
    image_path = dict(item.split("=", 1) for item in base_image.ENV)["PATH"]
    assert nitro_init.lookup("python", base_image.has_executable, image_path) == "/usr/local/bin/python"


def test_an_image_without_env_gets_the_inits_path_only() -> None:
    assert nitro_init.exec_environment([]) == ["PATH=/sbin:/usr/sbin:/bin:/usr/bin"]
    assert nitro_init.exec_environment(["A=1"]) == ["A=1"]


def test_the_shipped_dockerfile_starts_under_the_nitro_init() -> None:
    assert problems(DOCKERFILE.read_text()) == []


def test_a_cmd_that_needs_workdir_fails_the_contract() -> None:
    reverted = blockers.enclave_cmd_workdir(DOCKERFILE.read_text())
    assert problems(reverted) == ["No module named 'app'"]


def test_a_bare_python_fails_the_contract() -> None:
    reverted = blockers.enclave_cmd_bare_interpreter(DOCKERFILE.read_text())
    assert problems(reverted) == ["execvpe: python: No such file or directory"]

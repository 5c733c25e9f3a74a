"""The enclave image's recipe: pinned base and packages, and nothing but enclave + shared code in it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "app/enclave/Dockerfile"
REQUIREMENTS = REPO / "app/enclave/requirements.txt"
# Project dependencies only the parent's programs use; the enclave code must not import them.
PARENT_ONLY = {"tqdm"}  # progress bars of the producer, bench and status (app/producer/progress.py)


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.split("[")[0].lower()] = version
    return pins


def test_base_image_is_pinned_by_digest() -> None:
    froms = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]
    assert froms
    assert all(re.search(r"@sha256:[0-9a-f]{64}\b", line) for line in froms)


def test_every_requirement_is_pinned_exactly() -> None:
    lines = [
        line for line in REQUIREMENTS.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.]+", line.strip()) for line in lines)


def test_image_pins_match_the_project_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    image = _pins(REQUIREMENTS.read_text().splitlines())
    for name, version in _pins(project).items():
        if name not in PARENT_ONLY:
            assert image.get(name) == version, f"{name}: image {image.get(name)} vs project {version}"
    assert PARENT_ONLY.isdisjoint(image)


def test_enclave_code_imports_no_parent_only_dependency() -> None:
    for package in ("app/enclave", "app/shared"):
        assert not {m for m in _imports(REPO / package) if m.split(".")[0] in PARENT_ONLY}, package


def test_only_enclave_and_shared_code_is_copied() -> None:
    copies = [line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("COPY ")]
    assert all(src.startswith(("enclave/", "shared/", "__init__.py")) for src in copies), copies


def _imports(package: Path) -> set[str]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_enclave_code_imports_nothing_from_local_mode_or_the_parent() -> None:
    for package in ("app/enclave", "app/shared"):
        forbidden = {
            m
            for m in _imports(REPO / package)
            if m.startswith(("app.local", "app.parent", "app.producer", "moto", "infra"))
        }
        assert not forbidden, f"{package} imports {forbidden}"


def test_no_program_imports_infra() -> None:
    assert not {m for m in _imports(REPO / "app") if m.startswith("infra")}

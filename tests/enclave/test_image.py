"""The enclave image's recipe: pinned base and packages, and nothing but enclave + shared code in it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "app/enclave/Dockerfile"
REQUIREMENTS = REPO / "app/enclave/requirements.txt"
# Project dependencies only the parent's programs use; the enclave code must not import them.
PARENT_ONLY = {
    "tqdm",  # progress bars of the producer, bench and status (app/producer/progress.py)
    "boto3",  # the relay's and the CLI's AWS calls; the enclave's one KMS call is app/enclave/kms_client.py
}
# Top-level modules the enclave code imports from a third-party distribution, by distribution.
IMPORTED_FROM = {
    "asn1crypto": "asn1crypto",
    "botocore": "botocore",
    "cbor2": "cbor2",
    "cryptography": "cryptography",
}
PIN_LINE = re.compile(
    r"(?P<name>[A-Za-z0-9._-]+)==(?P<version>[A-Za-z0-9.]+)(?P<hashes>( --hash=sha256:[0-9a-f]{64})+)"
)


def _requirement_lines(text: str) -> list[str]:
    """pip's requirements-file lines: comments dropped, backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = (" ".join(line.split("#", 1)[0].split()) for line in joined.splitlines())
    return [line for line in lines if line]


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        name, _, version = line.split()[0].partition("==")
        pins[name.split("[")[0].lower()] = version
    return pins


def _image_pins() -> dict[str, str]:
    return _pins(_requirement_lines(REQUIREMENTS.read_text()))


def test_base_image_is_pinned_by_digest() -> None:
    froms = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]
    assert froms
    assert all(re.search(r"@sha256:[0-9a-f]{64}\b", line) for line in froms)


def test_every_requirement_is_pinned_exactly_with_its_wheel_hash() -> None:
    lines = _requirement_lines(REQUIREMENTS.read_text())
    assert len(lines) >= 4
    for line in lines:
        assert PIN_LINE.fullmatch(line), line


def test_pip_installs_only_hashed_wheels_and_nothing_else() -> None:
    run = next(
        line for line in _dockerfile_instructions() if line.startswith("RUN ") and "pip install" in line
    )
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "--no-compile"):
        assert flag in run.split(), flag


def test_the_pinned_set_is_complete() -> None:
    """--no-deps installs exactly the list: every dependency of a pinned wheel (CPython 3.11, Linux) is
    pinned, at a version it accepts. Read from the venv's metadata, which pins the same versions."""
    pins = _image_pins()
    environment = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
                   "platform_system": "Linux", "platform_python_implementation": "CPython",
                   "implementation_name": "cpython", "platform_machine": "x86_64"}  # fmt: skip
    for name, version in pins.items():
        assert metadata.version(name) == version, f"the venv has {name} {metadata.version(name)}"
        for text in metadata.requires(name) or []:
            needed = Requirement(text)
            if needed.marker and not needed.marker.evaluate({**environment, "extra": ""}):
                continue
            pinned = pins.get(needed.name.lower())
            assert pinned, f"{name} needs {needed}, which is not pinned"
            assert needed.specifier.contains(pinned, prereleases=True), f"{name} needs {needed}"


def test_what_the_enclave_imports_is_in_the_image() -> None:
    third_party = {
        m.split(".")[0]
        for package in ("app/enclave", "app/shared")
        for m in _imports(REPO / package)
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("app")
    }
    assert third_party == set(IMPORTED_FROM)
    assert {IMPORTED_FROM[m] for m in third_party} <= set(_image_pins())


def test_the_build_needs_the_fixed_epoch_and_keeps_no_hash_seed_at_run_time() -> None:
    instructions = _dockerfile_instructions()
    assert "ARG SOURCE_DATE_EPOCH" in instructions  # no default: build-eif.sh gives infra/build/context.py's
    run = instructions[-2]
    assert run.startswith('RUN test -n "$SOURCE_DATE_EPOCH"'), "the RUN step is the last one before CMD"
    assert "-newermt" in run
    assert not [line for line in instructions if line.startswith("ENV") and "PYTHONHASHSEED" in line]


def _dockerfile_instructions() -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_image_pins_match_the_project_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    image = _image_pins()
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


def test_the_clamp_step_lowers_new_mtimes_to_the_epoch_and_leaves_the_rest(tmp_path: Path) -> None:
    """The Dockerfile's own `find ... -exec touch` text, run by sh with the root moved to a scratch tree (GNU
    findutils and coreutils, as in the Debian base image): newer paths, links included, get the epoch; older
    ones and the pruned mounts keep theirs."""
    run = _dockerfile_instructions()[-2]
    clamp = run[run.index("find / ") :].replace("find / ", 'find "$R" ').replace("-path /", '-path "$R"/')
    root = tmp_path / "root"
    for directory in ("proc", "etc", "usr/lib", "opt/enclave/app"):
        (root / directory).mkdir(parents=True)
    for name in ("etc/hosts", "usr/lib/new.py", "usr/lib/old.py", "opt/enclave/app/x.py"):
        (root / name).write_text("")
    (root / "usr/lib/link").symlink_to("/nonexistent")
    epoch, old, new = 1_796_083_200, 1_000_000_000, 1_900_000_000
    for path in [*root.rglob("*"), root]:
        os.utime(path, (new, new), follow_symlinks=False)
    os.utime(root / "usr/lib/old.py", (old, old))
    env = {"PATH": os.environ["PATH"], "R": str(root), "SOURCE_DATE_EPOCH": str(epoch)}
    subprocess.run(["sh", "-c", clamp], env=env, check=True)
    times = {p.relative_to(root).as_posix(): int(p.lstat().st_mtime) for p in root.rglob("*")}
    assert times.pop("usr/lib/old.py") == old
    assert times.pop("proc") == new
    assert times.pop("etc/hosts") == new
    assert set(times.values()) == {epoch}, times

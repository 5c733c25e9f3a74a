"""The enclave image's build context (infra/build/context.py): byte-identical from any fresh checkout.

Two `git clone`s of this repository, made under different umasks and then given different mtimes, must
write the same tar; a change to a file the image copies must change it, a change anywhere else must not.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from app.local.software_nsm import measure_enclave_sources, software_measurement
from infra.build import context
from infra.constants import REPO_ROOT

CONTEXT_PY = Path("infra/build/context.py")


def _clone(destination: Path, umask: int) -> Path:
    old = os.umask(umask)
    try:
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(destination)],
            check=True,
            capture_output=True,
        )
    finally:
        os.umask(old)
    return destination


def _write_context(checkout: Path, output: Path) -> str:
    """Run the checkout's own context.py as CodeBuild does (a fresh python3, no venv packages)."""
    done = subprocess.run(
        [sys.executable, "-S", str(checkout / CONTEXT_PY), "write", "--source", str(checkout), str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    digest = done.stdout.strip()
    assert digest == hashlib.sha256(output.read_bytes()).hexdigest()
    return digest


def _age(tree: Path, mtime: int) -> None:
    for path in tree.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (mtime, mtime), follow_symlinks=False)


@pytest.fixture(scope="module")
def clones(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("clones")
    first, second = _clone(base / "first", 0o022), _clone(base / "second", 0o077)
    _age(second, 1_000_000_000)
    return first, second


def test_two_fresh_checkouts_give_the_same_context_bytes(clones: tuple[Path, Path], tmp_path: Path) -> None:
    first, second = clones
    assert (second / "app/enclave/server.py").stat().st_mode & 0o777 != (
        first / "app/enclave/server.py"
    ).stat().st_mode & 0o777  # the umasks really differed
    assert _write_context(first, tmp_path / "a.tar") == _write_context(second, tmp_path / "b.tar")


def test_an_enclave_change_changes_the_context(clones: tuple[Path, Path], tmp_path: Path) -> None:
    checkout = clones[0]
    before = _write_context(checkout, tmp_path / "before.tar")
    server = checkout / "app/shared/limits.py"
    original = server.read_bytes()
    try:
        server.write_bytes(original + b"\n# one more line\n")
        assert _write_context(checkout, tmp_path / "after.tar") != before
    finally:
        server.write_bytes(original)
    assert _write_context(checkout, tmp_path / "again.tar") == before


def test_changes_outside_the_image_do_not(clones: tuple[Path, Path], tmp_path: Path) -> None:
    checkout = clones[1]
    before = _write_context(checkout, tmp_path / "before.tar")
    (checkout / "app/local/extra.py").write_text("x = 1\n")
    (checkout / "README.md").write_text("changed\n")
    (checkout / "app/.dockerignore").write_text("local/\n")
    (checkout / "app/enclave/__pycache__").mkdir(exist_ok=True)
    (checkout / "app/enclave/__pycache__/server.cpython-311.pyc").write_bytes(b"bytecode")
    (checkout / "app/shared/stray.pyc").write_bytes(b"bytecode")
    os.chmod(checkout / "app/enclave/server.py", 0o700)
    os.utime(checkout / "app/enclave/server.py", (2_000_000_000, 2_000_000_000))
    assert _write_context(checkout, tmp_path / "after.tar") == before


def _members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        return tar.getmembers()


def test_entries_are_sorted_owned_by_root_with_fixed_modes_and_mtime(tmp_path: Path) -> None:
    context.write(REPO_ROOT / "app", tmp_path / "c.tar")
    members = _members((tmp_path / "c.tar").read_bytes())
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {n.split("/")[0] for n in names} == {"__init__.py", "enclave", "shared"}
    assert "enclave/Dockerfile" in names
    assert "enclave/requirements.txt" in names
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == context.SOURCE_DATE_EPOCH
        assert member.mode == (0o755 if member.isdir() else 0o644), member.name
        assert member.isdir() or member.isfile()
        assert "__pycache__" not in member.name
        assert not member.name.endswith(".pyc")


def test_the_context_is_what_the_dockerfile_copies_and_local_mode_measures(tmp_path: Path) -> None:
    dockerfile = (REPO_ROOT / "app/enclave/Dockerfile").read_text().splitlines()
    copied = {line.split()[1].rstrip("/") for line in dockerfile if line.startswith("COPY ")}
    assert copied <= {*context.FILES, *context.TREES, "enclave/requirements.txt"}
    assert {*context.FILES, *context.TREES} <= copied
    context.write(REPO_ROOT / "app", tmp_path / "c.tar")
    with tarfile.open(tmp_path / "c.tar") as tar:
        unpacked = tmp_path / "app"
        for member in tar.getmembers():
            if member.isfile() and member.name != "__init__.py":
                source = tar.extractfile(member)
                (unpacked / member.name).parent.mkdir(parents=True, exist_ok=True)
                (unpacked / member.name).write_bytes(source.read() if source else b"")
    files = [p for p in unpacked.rglob("*") if p.is_file()]
    # Same files, same bytes: local mode's PCR0 stand-in over the context equals it over the checkout.
    assert software_measurement(files, root=tmp_path) == measure_enclave_sources(REPO_ROOT)


def test_a_symlink_is_refused_by_name(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "enclave").mkdir(parents=True)
    (app / "shared").mkdir()
    (app / "__init__.py").write_text("")
    (app / "shared/link.py").symlink_to("/etc/passwd")
    with pytest.raises(context.ContextError, match=r"link\.py"):
        context.write(app, tmp_path / "c.tar")


def test_epoch_is_printed_for_the_build_script() -> None:
    done = subprocess.run(
        [sys.executable, "-S", str(REPO_ROOT / CONTEXT_PY), "epoch"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(context.SOURCE_DATE_EPOCH)

"""The code asset is an allow-list: exactly the files the instance uses reach S3, and a synth whose output
directory is inside the repository works (it used to copy itself into itself until ENAMETOOLONG)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from aws_cdk import App

from infra.app import build_app
from infra.constants import CODE_ASSET_FILES, HOST_FILES_DIR, REPO_ROOT
from infra.constructs.code_asset import ignore_patterns
from tests.infra.conftest import CDK_JSON_CONTEXT, Synth


def code_asset_dir(outdir: Path) -> Path:
    """The project's code asset in a synthesized assembly: the one the enclave image build names as its
    SourceHash (the assembly also holds the build's Lambda handler assets)."""
    template = json.loads((outdir / "NitroEnclaveDemo.template.json").read_text())
    (source_hash,) = [
        r["Properties"]["SourceHash"]
        for r in template["Resources"].values()
        if r["Type"] == "Custom::EnclaveImageBuild"
    ]
    manifest = json.loads((outdir / "NitroEnclaveDemo.assets.json").read_text())
    entry = manifest["files"][source_hash]["source"]
    assert entry["packaging"] == "zip"
    return outdir / str(entry["path"])


def asset_files(outdir: Path) -> set[str]:
    """Every file of the code asset, relative to its root."""
    root = code_asset_dir(outdir)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def allowed_in(root: Path) -> set[str]:
    """The allow-list applied with pathlib's globbing: independent of the gitignore translation."""
    found = {p for glob in CODE_ASSET_FILES for p in root.glob(glob) if p.is_file()}
    return {p.relative_to(root).as_posix() for p in found if "__pycache__" not in p.parts}


def test_the_asset_holds_exactly_the_allowed_files(default: Synth) -> None:
    assert asset_files(default.outdir) == allowed_in(REPO_ROOT)


def test_the_asset_holds_every_host_file_the_bootstrap_installs(default: Synth) -> None:
    used = set(re.findall(r'"\$HOST_DIR/([^"]+)"', (HOST_FILES_DIR / "bootstrap.sh").read_text()))
    assert used, 'bootstrap.sh no longer names its host files as "$HOST_DIR/<name>"'
    shipped = asset_files(default.outdir)
    assert {f"infra/constructs/host/{name}" for name in used} <= shipped
    assert "infra/constructs/host/bootstrap.sh" in shipped  # the user data runs it from the asset


def test_the_asset_holds_what_pip_and_docker_build_need(default: Synth) -> None:
    shipped = asset_files(default.outdir)
    assert {
        "pyproject.toml",
        "app/enclave/Dockerfile",
        "app/enclave/requirements.txt",
        "app/.dockerignore",
    } <= (shipped)
    assert {"app/shared/aws_nitro_root_g1.pem", "app/producer/cards.txt", "app/enclave/server.py"} <= shipped
    assert not {
        p for p in shipped if p.startswith(("tests/", "docs/", "rehearsal/", "infra/constructs/host/user"))
    }


def test_synth_with_its_output_inside_the_repository_and_a_stray_file(tmp_path: Path) -> None:
    # `cdk synth -o out` inside a checkout that also holds a stray file (a note, a key, a core dump).
    tag = f"test-{os.getpid()}"
    outdir, strays = (
        REPO_ROOT / f"out-{tag}",
        [REPO_ROOT / f"stray-{tag}.txt", REPO_ROOT / f"infra/stray-{tag}"],
    )
    try:
        for stray in strays:
            stray.write_text("must not reach S3\n")
        app = App(context=dict(CDK_JSON_CONTEXT), outdir=str(outdir))
        build_app(app)
        app.synth()
        shipped = asset_files(outdir)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
        for stray in strays:
            stray.unlink(missing_ok=True)
    assert shipped == allowed_in(REPO_ROOT)


def test_the_patterns_ignore_everything_first_and_re_include_parents_before_files() -> None:
    patterns = ignore_patterns(["a/b/c.txt", "d/**/*.py"])
    assert patterns == [
        "/*",
        "!/a/",
        "/a/*",
        "!/a/b/",
        "/a/b/*",
        "!/d/",
        "/d/*",
        "/d/**",
        "!/d/**/",
        "!/a/b/c.txt",
        "!/d/**/*.py",
        "__pycache__/",
        "*.pyc",
    ]

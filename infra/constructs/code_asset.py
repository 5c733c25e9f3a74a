"""The project's code as one S3 asset built from an allow-list. Owns the translation of the allow-list into
the gitignore patterns CDK applies; no other files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import IgnoreMode
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra import constants


def ignore_patterns(allowed: Sequence[str], never: Sequence[str] = constants.CODE_ASSET_NEVER) -> list[str]:
    """gitignore patterns (CDK's IgnoreMode.GIT) that keep exactly the `allowed` globs: ignore everything at
    the top, then re-include each allowed file's directories one level at a time, because files inside an
    ignored directory can never be re-included (git's rule, and CDK never enters an ignored directory)."""
    deep = [d for d in _directories(allowed) if d.endswith("**")]
    patterns = ["/*"]
    for directory in _directories(allowed):
        if directory in deep:
            patterns += [f"/{directory}", f"!/{directory}/"]  # every directory below, their files ignored
        elif not any(directory.startswith(d.removesuffix("**")) for d in deep):
            patterns += [f"!/{directory}/", f"/{directory}/*"]
    patterns += [f"!/{glob}" for glob in allowed]
    return patterns + list(never)


def _directories(allowed: Sequence[str]) -> list[str]:
    """Every directory an allowed glob lives in, parents before children, each once."""
    found: list[str] = []
    for glob in allowed:
        parts = glob.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in found:
                found.append(directory)
    return found


def code_asset(scope: Construct, construct_id: str, *, root: Path = constants.REPO_ROOT) -> s3_assets.Asset:
    return s3_assets.Asset(
        scope,
        construct_id,
        path=str(root),
        exclude=ignore_patterns(constants.CODE_ASSET_FILES),
        ignore_mode=IgnoreMode.GIT,
    )

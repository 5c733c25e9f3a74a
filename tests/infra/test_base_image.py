"""Where the build pulls the enclave image's base from: ECR Public's mirror of the Docker Official Images,
by digest, never Docker Hub, whose anonymous pull limit CodeBuild's shared addresses reach
(docs/reproducible-build.md, "The base image")."""

from __future__ import annotations

import re

from infra.constants import REPO_ROOT

DOCKERFILE = REPO_ROOT / "app/enclave/Dockerfile"
# ECR Public serves the Docker Official Images under docker/library/<name> (gallery.ecr.aws/docker).
MIRROR = "public.ecr.aws/docker/library/"
FROM_RE = re.compile(
    r"FROM (?P<registry>\S+/)?(?P<name>[a-z0-9._-]+):(?P<tag>\S+)@sha256:(?P<digest>[0-9a-f]{64})"
)


def _froms() -> list[str]:
    return [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM ")]


def test_the_base_image_comes_from_the_ecr_public_mirror_by_digest() -> None:
    (line,) = _froms()
    match = FROM_RE.fullmatch(line)
    assert match, line
    assert match["registry"] == MIRROR  # a bare name would be docker.io, anonymously rate-limited
    assert (match["name"], match["tag"]) == ("python", "3.11-slim")


def test_the_docs_name_the_digest_the_dockerfile_pulls() -> None:
    (line,) = _froms()
    match = FROM_RE.fullmatch(line)
    assert match, line
    doc = (REPO_ROOT / "docs/reproducible-build.md").read_text()
    assert f"{MIRROR}python:3.11-slim@sha256:{match['digest']}" in doc

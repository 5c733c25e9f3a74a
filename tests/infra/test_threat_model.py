"""docs/threat-model.md names tests that exist: every `tests/<file>.py::<test>` (and `::<test>` after it, in
the same file) is a test function of that file. Lines that cite another branch's tests (the fixes other
work is landing) are skipped until those branches merge. The README's trust paragraph points at it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from infra.constants import REPO_ROOT

THREAT_MODEL = REPO_ROOT / "docs" / "threat-model.md"
OTHER_BRANCHES = ("h20-build", "h21-results")
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(::(\w+))?`")


def references() -> Iterator[tuple[str, str | None]]:
    """(file, test or None) for each citation; `::name` belongs to the file last named in the same bullet
    or table row (a bullet's continuation lines included)."""
    path = None
    for line in THREAT_MODEL.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith(("|", "- ", "#")):
            path = None
        if any(branch in line for branch in OTHER_BRANCHES):
            continue
        for match in REFERENCE.finditer(line):
            path = match.group(1) or path
            if path is not None and (match.group(1) or match.group(3)):
                yield path, match.group(3)


CITED = sorted(set(references()))


def test_the_threat_model_cites_tests() -> None:
    assert len(CITED) > 30


@pytest.mark.parametrize(("path", "name"), CITED, ids=str)
def test_every_cited_test_exists(path: str, name: str | None) -> None:
    source = REPO_ROOT / path
    assert source.is_file(), path
    if name is not None:
        assert re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.MULTILINE), (
            f"{path}::{name}"
        )


def test_the_readmes_trust_paragraph_points_at_the_threat_model_and_names_alias_redirection() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("- **Who can and cannot influence the pin**")
    paragraph = " ".join(readme[start : readme.index("\n- **", start + 1)].split())
    assert "[`docs/threat-model.md`](docs/threat-model.md)" in paragraph
    assert "**alias redirection**" in paragraph
    assert "no program follows the alias" in paragraph

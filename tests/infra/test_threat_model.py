"""docs/threat-model.md names tests that exist: every `tests/<file>.py::<test>` (and `::<test>` after it, in
the same file) is a test function of that file, with no exception; a line that cites an existing test is
never still marked "being fixed" or "open". The README's trust paragraph points at it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from infra.constants import REPO_ROOT

THREAT_MODEL = REPO_ROOT / "docs" / "threat-model.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(::(\w+))?`")
UNFINISHED = re.compile(r"being fixed|\*\*open\*\*", re.IGNORECASE)


def entries(text: str) -> list[str]:
    """The bullets and table rows of `text`, each with its continuation lines."""
    found: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("|", "- ", "#")) or not found:
            found.append(line)
        else:
            found[-1] += "\n" + line
    return found


def references(entry: str) -> Iterator[tuple[str, str | None]]:
    """(file, test or None) for each citation of one entry; `::name` belongs to the file last named in it."""
    path = None
    for match in REFERENCE.finditer(entry):
        path = match.group(1) or path
        if path is not None and (match.group(1) or match.group(3)):
            yield path, match.group(3)


def exists(path: str, name: str | None) -> bool:
    source = REPO_ROOT / path
    if not source.is_file():
        return False
    text = source.read_text(encoding="utf-8")
    return name is None or re.search(rf"^def {name}\(", text, re.MULTILINE) is not None


ENTRIES = entries(THREAT_MODEL.read_text(encoding="utf-8"))
CITED = sorted({reference for entry in ENTRIES for reference in references(entry)})


def test_the_threat_model_cites_tests() -> None:
    assert len(CITED) > 30


@pytest.mark.parametrize(("path", "name"), CITED, ids=str)
def test_every_cited_test_exists(path: str, name: str | None) -> None:
    assert exists(path, name), f"{path}::{name}"


def test_no_line_citing_an_existing_test_is_still_open_or_being_fixed() -> None:
    stale = [
        entry.strip()[:120]
        for entry in ENTRIES
        if UNFINISHED.search(entry) and any(exists(*reference) for reference in references(entry))
    ]
    assert stale == []


def test_the_threat_model_names_no_branch() -> None:
    # Branches come and go; the document says what holds on the code it sits beside.
    assert re.findall(r"\bh\d+-[a-z]+\b", THREAT_MODEL.read_text(encoding="utf-8")) == []


def test_the_stale_form_is_caught() -> None:
    # The check above on the form this file once had: "being fixed" beside a test that exists.
    cited = "`tests/infra/test_threat_model.py::test_every_cited_test_exists`"
    entry = f"| results | forge results | **being fixed**: {cited} |"
    assert UNFINISHED.search(entry)
    assert any(exists(*r) for r in references(entry))


def test_the_readmes_trust_paragraph_points_at_the_threat_model_and_names_alias_redirection() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("- **Who can and cannot influence the pin**")
    paragraph = " ".join(readme[start : readme.index("\n- **", start + 1)].split())
    assert "[`docs/threat-model.md`](docs/threat-model.md)" in paragraph
    assert "**alias redirection**" in paragraph
    assert "no program follows the alias" in paragraph

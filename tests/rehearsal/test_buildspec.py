"""Reading a buildspec as CodeBuild reads it (build-spec-ref.html), and refusing what the stand-in lacks."""

from __future__ import annotations

import pytest

from rehearsal import buildspec


def test_phases_shell_and_variables_are_read() -> None:
    spec = buildspec.parse(
        "version: 0.2\nenv:\n  shell: bash\n  variables: {A: 1}\n  exported-variables: [PCR0]\n"
        "phases:\n  build:\n    commands: [make]\n    finally: [echo done]\n"
    )
    assert spec.shell == "/bin/bash"
    assert spec.variables == {"A": "1"}
    assert spec.exported_variables == ["PCR0"]
    assert spec.phases == [
        {"name": "BUILD", "commands": ["make"], "finally": ["echo done"], "on_failure": "ABORT"}
    ]


def test_the_default_shell_is_sh() -> None:
    assert buildspec.parse("version: 0.2\nphases: {build: {commands: [x]}}\n").shell == "/bin/sh"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("version: 0.1\nphases: {build: {commands: [x]}}\n", "version 0.2 only"),
        ("version: 0.2\nenv: {parameter-store: {A: /a}}\n", "parameter-store"),
        ("version: 0.2\nartifacts: {files: [x]}\n", "artifacts"),
        ("version: 0.2\nphases: {build: {runtime-versions: {python: 3.11}}}\n", "runtime-versions"),
        ("version: 0.2\nphases: {deploy: {commands: [x]}}\n", "phases must be among"),
        ("version: 0.2\nphases: {build: {commands: [x], on-failure: RETRY}}\n", "ABORT or CONTINUE"),
        ("version: 0.2\nenv: {shell: zsh}\n", "env/shell"),
        ("version: [0.2\n", "YAML_FILE_ERROR"),
    ],
)
def test_what_codebuild_refuses_or_the_stand_in_lacks_is_refused_by_name(text: str, complaint: str) -> None:
    with pytest.raises(buildspec.BuildspecError, match=complaint):
        buildspec.parse(text)


def test_start_build_overrides_beat_the_project_which_beats_the_buildspec() -> None:
    spec = buildspec.parse("version: 0.2\nenv: {variables: {A: spec, B: spec, C: spec}}\n")
    env = buildspec.environment(spec, {"B": "project", "C": "project"}, {"C": "override"}, {"HOME": "/root"})
    assert env == {"HOME": "/root", "A": "spec", "B": "project", "C": "override"}

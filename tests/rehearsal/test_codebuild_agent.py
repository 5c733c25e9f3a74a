"""The build container's agent stand-in, run here with this machine's bash: buildspec version 0.2's
one-shell rule and CodeBuild's phase transitions (CodeBuild User Guide: build-spec-ref.html,
build-env-ref-cmd.html, view-build-details-phases.html)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rehearsal import buildspec
from rehearsal.standins import codebuild_agent

AGENT = Path(codebuild_agent.__file__)


def run_agent(
    tmp_path: Path, spec_text: str, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    spec = buildspec.parse(spec_text)
    plan = buildspec.agent_plan(
        spec, {"PATH": "/usr/bin:/bin", **spec.variables, **(env or {})}, src_dir=str(tmp_path),
        scratch_dir=str(tmp_path / "scratch"), result=str(tmp_path / "result.json"),
        log=str(tmp_path / "build.log"), script=str(tmp_path / "tmp" / "script.sh"),
    )  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    subprocess.run([sys.executable, str(AGENT), str(tmp_path / "plan.json")], check=True, timeout=60)
    result = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    return result, (tmp_path / "build.log").read_text(encoding="utf-8")


def phases(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["phaseType"], p["phaseStatus"]) for p in result["phases"]]


def exported(result: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v["value"] for v in result["exportedEnvironmentVariables"]}


def test_variables_and_the_directory_carry_over_options_and_functions_do_not(tmp_path: Path) -> None:
    result, log = run_agent(
        tmp_path,
        """
version: 0.2
env:
  shell: bash
  exported-variables: [PCR0, WHERE, MULTI, NO_FUNCTION, AFTER_SET_E]
phases:
  install:
    commands:
      - mkdir -p out && cd out
      - PCR0=abc
      - |
        set -euo pipefail
        export MULTI="two
        lines"
      - greet() { echo "hello $1"; }
  build:
    commands:
      - WHERE=$(basename "$PWD")
      - NO_FUNCTION=$(type -t greet || echo none)
      - "false || true; AFTER_SET_E=$UNSET_IS_FINE"
""",
    )
    assert result["buildStatus"] == "SUCCEEDED"
    assert result["currentPhase"] == "COMPLETED"
    assert exported(result) == {
        "PCR0": "abc",
        "WHERE": "out",
        "MULTI": "two\nlines",
        "NO_FUNCTION": "none",
        "AFTER_SET_E": "",
    }
    assert "[Container] Running command mkdir -p out && cd out" in log


def test_a_failed_install_skips_to_finalizing_after_its_finally(tmp_path: Path) -> None:
    result, log = run_agent(
        tmp_path,
        """
version: 0.2
phases:
  install:
    commands:
      - "false"
      - echo never
    finally:
      - echo cleanup
  build:
    commands:
      - echo never built
""",
    )
    assert phases(result) == [("INSTALL", "FAILED"), ("FINALIZING", "SUCCEEDED")]
    assert result["buildStatus"] == "FAILED"
    assert result["phases"][0]["contexts"] == [
        {
            "statusCode": "COMMAND_EXECUTION_ERROR",
            "message": "Error while executing command: false. Reason: exit status 1",
        }
    ]
    assert "cleanup" in log
    assert "never" not in log


def test_post_build_still_runs_after_a_failed_build_and_sees_it_failing(tmp_path: Path) -> None:
    result, _ = run_agent(
        tmp_path,
        """
version: 0.2
env:
  shell: bash
  exported-variables: [SEEN]
phases:
  build:
    commands:
      - exit_with() { return "$1"; }; exit_with 3
  post_build:
    commands:
      - SEEN=$CODEBUILD_BUILD_SUCCEEDING
""",
    )
    assert phases(result)[2:4] == [("BUILD", "FAILED"), ("POST_BUILD", "SUCCEEDED")]
    assert "exit status 3" in result["phases"][2]["contexts"][0]["message"]
    assert exported(result) == {"SEEN": "0"}
    assert result["buildStatus"] == "FAILED"


def test_on_failure_continue_goes_on_but_the_build_still_fails(tmp_path: Path) -> None:
    result, log = run_agent(
        tmp_path,
        """
version: 0.2
phases:
  pre_build:
    on-failure: CONTINUE
    commands:
      - "false"
  build:
    commands:
      - echo built anyway
""",
    )
    assert ("PRE_BUILD", "FAILED") in phases(result)
    assert ("BUILD", "SUCCEEDED") in phases(result)
    assert "built anyway" in log
    assert result["buildStatus"] == "FAILED"


def test_a_command_reading_stdin_does_not_eat_the_next_command(tmp_path: Path) -> None:
    result, _ = run_agent(
        tmp_path,
        """
version: 0.2
env:
  shell: bash
  exported-variables: [AFTER]
phases:
  build:
    commands:
      - cat > /dev/null
      - AFTER=yes
""",
    )
    assert exported(result) == {"AFTER": "yes"}

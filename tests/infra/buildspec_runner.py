"""A buildspec run here by the rehearsal's CodeBuild agent: the one model of how CodeBuild runs commands.

The model and its sources are the rehearsal's (rehearsal/buildspec.py reads the buildspec, builds the
environment; rehearsal/standins/codebuild_agent.py runs the phases; docs/rehearsal.md, "Commands"). This
adapter only writes the agent's plan for a directory here instead of a build container, and reads its
result back into an Outcome the infra tests assert on. `carry_unexported=False` runs the same agent
carrying exported variables and the directory only, the narrowest reading of CodeBuild's documentation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rehearsal import buildspec
from rehearsal.standins import codebuild_agent

# The agent's phase names, and the buildspec's.
PHASE_KEYS = {name: key for key, name in buildspec.PHASE_NAMES.items()}


@dataclass
class Outcome:
    phases: dict[str, bool] = field(default_factory=dict)  # the buildspec's phases that ran: succeeded?
    failure: str = ""  # CodeBuild's COMMAND_EXECUTION_ERROR message of the first failed phase
    exported: dict[str, str] = field(default_factory=dict)
    build_status: str = ""
    output: str = ""  # the build log: the agent's [Container] lines and the commands' output

    @property
    def succeeded(self) -> bool:
        return self.build_status == "SUCCEEDED"


def run(
    text: str,
    *,
    source_dir: Path,
    scratch: Path,
    base_env: Mapping[str, str],
    project: Mapping[str, str] | None = None,
    start: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    carry_unexported: bool = True,
) -> Outcome:
    """Run buildspec `text` over `source_dir`: `base_env` stands for the image's environment and built-ins,
    `project` and `start` for the project's and StartBuild's variables, `variables` replace the buildspec's
    own (e.g. OUT to a test directory)."""
    spec = buildspec.parse(text)
    if variables:
        spec = replace(spec, variables={**spec.variables, **variables})
    env = buildspec.environment(spec, project or {}, start or {}, base_env)
    scratch.mkdir(parents=True, exist_ok=True)
    plan = buildspec.agent_plan(
        spec, env, src_dir=str(source_dir), scratch_dir=str(scratch / "state"),
        result=str(scratch / "result.json"), log=str(scratch / "build.log"),
        script=str(scratch / "tmp" / "script.sh"), carry_unexported=carry_unexported,
    )  # fmt: skip
    (scratch / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    codebuild_agent.main([str(scratch / "plan.json")])
    return _outcome(json.loads((scratch / "result.json").read_text(encoding="utf-8")), spec, scratch)


def _outcome(result: dict[str, Any], spec: buildspec.Buildspec, scratch: Path) -> Outcome:
    declared = {phase["name"] for phase in spec.phases}
    outcome = Outcome(
        exported={v["name"]: v["value"] for v in result.get("exportedEnvironmentVariables", [])},
        build_status=str(result.get("buildStatus", "")),
        output=(scratch / "build.log").read_text(encoding="utf-8"),
    )
    for phase in result.get("phases", []):
        name = phase["phaseType"]
        if name in declared:
            outcome.phases[PHASE_KEYS[name]] = phase.get("phaseStatus") == "SUCCEEDED"
        contexts = phase.get("contexts") or []
        if contexts and not outcome.failure:
            outcome.failure = str(contexts[0].get("message", ""))
    return outcome

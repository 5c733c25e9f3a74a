"""A buildspec, read as CodeBuild reads it, turned into the plan the build container's agent runs.

Contract (CodeBuild User Guide, "Build specification reference for CodeBuild", build-spec-ref.html):
`version` must be 0.2 (0.1 ran each command in its own shell; we refuse it rather than pretend); `env` may
have `shell` (bash or /bin/sh on Linux), `variables` (strings), `exported-variables` (names); `phases` are
install, pre_build, build, post_build, each with `commands`, optional `finally` and `on-failure` (ABORT or
CONTINUE). Environment precedence ("Environment variables in build environments" and the env/variables
entry): a StartBuild override beats the project's variable, which beats the buildspec's. Anything this
stand-in does not implement (parameter-store, secrets-manager, run-as, runtime-versions, reports,
artifacts with files, batch) is refused by name, so a buildspec that relies on it cannot pass here silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

PHASE_NAMES = {"install": "INSTALL", "pre_build": "PRE_BUILD", "build": "BUILD", "post_build": "POST_BUILD"}
PHASE_KEYS = frozenset({"commands", "finally", "on-failure"})
ENV_KEYS = frozenset({"shell", "variables", "exported-variables"})
TOP_KEYS = frozenset({"version", "env", "phases"})
SHELLS = {"bash": "/bin/bash", "/bin/sh": "/bin/sh", "sh": "/bin/sh"}
DEFAULT_SHELL = "/bin/sh"  # CodeBuild's Linux default when env/shell is not set


class BuildspecError(ValueError):
    """A buildspec CodeBuild would refuse (YAML_FILE_ERROR), or one using what this stand-in lacks."""


@dataclass(frozen=True)
class Buildspec:
    shell: str
    variables: Mapping[str, str]
    exported_variables: Sequence[str]
    phases: Sequence[
        Mapping[str, Any]
    ]  # {"name": INSTALL.., "commands": [..], "finally": [..], "on_failure"}


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildspecError(f"YAML_FILE_ERROR: {what} must be a list of strings")
    return list(value)


def _phase(name: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BuildspecError(f"YAML_FILE_ERROR: phase {name} must be a mapping")
    unknown = set(body) - PHASE_KEYS
    if unknown:
        raise BuildspecError(f"phase {name}: {sorted(unknown)} not supported by the rehearsal's CodeBuild")
    on_failure = body.get("on-failure", "ABORT")
    if on_failure not in ("ABORT", "CONTINUE"):
        raise BuildspecError(f"YAML_FILE_ERROR: phase {name}: on-failure must be ABORT or CONTINUE")
    return {
        "name": PHASE_NAMES[name],
        "commands": _strings(body.get("commands", []), f"phases.{name}.commands"),
        "finally": _strings(body.get("finally", []), f"phases.{name}.finally"),
        "on_failure": on_failure,
    }


def _env(env: Any) -> tuple[str, dict[str, str], list[str]]:
    if not isinstance(env, dict):
        raise BuildspecError("YAML_FILE_ERROR: env must be a mapping")
    unknown = set(env) - ENV_KEYS
    if unknown:
        raise BuildspecError(f"env: {sorted(unknown)} not supported by the rehearsal's CodeBuild")
    shell = env.get("shell")
    if shell is not None and shell not in SHELLS:
        raise BuildspecError(f"YAML_FILE_ERROR: env/shell {shell!r} is not one of {sorted(SHELLS)}")
    variables = env.get("variables") or {}
    if not isinstance(variables, dict):
        raise BuildspecError("YAML_FILE_ERROR: env/variables must be a mapping")
    exported = _strings(env.get("exported-variables") or [], "env/exported-variables")
    return (
        SHELLS[shell] if shell else DEFAULT_SHELL,
        {str(k): str(v) for k, v in variables.items()},
        exported,
    )


def parse(text: str) -> Buildspec:
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BuildspecError(f"YAML_FILE_ERROR: {error}") from error
    if not isinstance(spec, dict):
        raise BuildspecError("YAML_FILE_ERROR: a buildspec is a mapping")
    unknown = set(spec) - TOP_KEYS
    if unknown:
        raise BuildspecError(f"{sorted(unknown)} not supported by the rehearsal's CodeBuild")
    if str(spec.get("version")) != "0.2":
        raise BuildspecError(
            f"version {spec.get('version')!r}: the rehearsal runs buildspec version 0.2 only"
        )
    shell, variables, exported = _env(spec.get("env") or {})
    phases_in = spec.get("phases") or {}
    if not isinstance(phases_in, dict) or set(phases_in) - set(PHASE_NAMES):
        raise BuildspecError(f"YAML_FILE_ERROR: phases must be among {sorted(PHASE_NAMES)}")
    phases = [_phase(name, phases_in[name]) for name in PHASE_NAMES if name in phases_in]
    return Buildspec(shell=shell, variables=variables, exported_variables=exported, phases=phases)


def environment(
    spec: Buildspec, project: Mapping[str, str], override: Mapping[str, str], built_in: Mapping[str, str]
) -> dict[str, str]:
    """The build's environment: built-ins, then the buildspec's, the project's, the StartBuild override's."""
    return {**built_in, **spec.variables, **project, **override}


def agent_plan(
    spec: Buildspec, env: Mapping[str, str], *, src_dir: str, scratch_dir: str, result: str, log: str,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """The plan the CodeBuild agent stand-in runs (`rehearsal/standins/codebuild_agent.py` reads these
    keys): the buildspec's shell, phases and exported variables, the build's environment, where the source
    is and where the agent keeps its state, result and log; `extra` for the agent's optional keys."""
    return {
        "shell": spec.shell,
        "env": dict(env),
        "phases": list(spec.phases),
        "exported_variables": list(spec.exported_variables),
        "src_dir": src_dir,
        "scratch_dir": scratch_dir,
        "result": result,
        "log": log,
        **extra,
    }

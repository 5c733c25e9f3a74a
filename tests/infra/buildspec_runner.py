"""Runs a buildspec's phases the way CodeBuild does, as far as its documentation and public build logs show.

The model (sources: the CodeBuild buildspec reference for version 0.2, "Shells and commands in build
environments", and build logs quoted in public issues, e.g. magenx/Magento-2-aws-cluster-terraform#19 and
aws/aws-codebuild-docker-images#102, where each command fails inside /codebuild/output/tmp/script.sh):
- phases run in the order install, pre_build, build, post_build; each item under `commands` is written to a
  script and run by `env/shell` (bash here) in a shell of its own;
- what carries over to the next item is the exported environment and the working directory, nothing else
  (shell options like `set -e`, functions, arrays and unexported variables are lost: the issue above shows a
  `declare -A` array gone in the next command). This runner carries only exported variables, the stricter
  reading, so a buildspec relying on anything more fails here first;
- an item that exits non-zero fails its phase and the rest of the phase is skipped; the later phases are
  skipped too (the buildspec here has no post_build, so CodeBuild's running of post_build after a failed
  build does not matter to it);
- `exported-variables` are read from the environment after the last phase.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PHASES = ("install", "pre_build", "build", "post_build")


@dataclass
class Outcome:
    phases: dict[str, bool] = field(default_factory=dict)
    failed_command: str = ""
    env: dict[str, str] = field(default_factory=dict)
    exported: dict[str, str] = field(default_factory=dict)
    output: str = ""

    @property
    def succeeded(self) -> bool:
        return all(self.phases.values()) and not self.failed_command


def build_environment(
    spec: Mapping[str, Any], project: Mapping[str, str], start: Mapping[str, str]
) -> dict[str, str]:
    """Precedence from the buildspec reference: StartBuild override > project > buildspec env/variables."""
    variables = {k: str(v) for k, v in spec.get("env", {}).get("variables", {}).items()}
    return {**variables, **project, **start}


def run(spec: Mapping[str, Any], *, source_dir: Path, base_env: Mapping[str, str], scratch: Path) -> Outcome:
    shell = spec.get("env", {}).get("shell", "/bin/sh")
    env, cwd, outcome = dict(base_env), source_dir, Outcome()
    for phase in PHASES:
        if phase not in spec.get("phases", {}):
            continue
        for command in spec["phases"][phase].get("commands", []):
            status, env, cwd, output = _run_one(command, shell=shell, env=env, cwd=cwd, scratch=scratch)
            outcome.output += output
            if status != 0:
                outcome.phases[phase], outcome.failed_command = False, command
                outcome.env = env
                return outcome
        outcome.phases[phase] = True
    outcome.env = env
    outcome.exported = {name: env.get(name, "") for name in spec.get("env", {}).get("exported-variables", [])}
    return outcome


def _run_one(
    command: str, *, shell: str, env: dict[str, str], cwd: Path, scratch: Path
) -> tuple[int, dict[str, str], Path, str]:
    env_file, pwd_file, script = scratch / "env", scratch / "pwd", scratch / "script.sh"
    # The trailer records what the next command inherits; a command that exits early fails anyway.
    script.write_text(f'{command}\n__status=$?\nenv -0 > "{env_file}"\npwd > "{pwd_file}"\nexit $__status\n')
    env_file.unlink(missing_ok=True)
    result = subprocess.run(
        [shell, str(script)], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 or not env_file.exists():
        return result.returncode or 1, env, cwd, output
    pairs = (item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    carried = {k: v for k, v in pairs if k not in ("_", "SHLVL", "PWD", "OLDPWD")}
    return 0, carried, Path(pwd_file.read_text().strip()), output

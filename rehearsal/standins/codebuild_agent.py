#!/usr/bin/python3
"""Stand-in for the CodeBuild agent inside the build container: runs a buildspec's phases and reports.

The host side (rehearsal/codebuild.py) reads the buildspec, merges the environment and writes a plan (JSON);
this program, stdlib only, runs in the build container and writes its progress and result (JSON) as it
goes, so BatchGetBuilds can show the current phase. Contract (CodeBuild User Guide: "Build specification
reference" build-spec-ref.html, "Shells and commands in build environments" build-env-ref-cmd.html,
"Build phase transitions" view-build-details-phases.html, "Environment variables in build environments"):

- version 0.2: a `cd` or a variable set by one command is there for the next ones, in every phase (the
  CodePipeline User Guide's ECS tutorial, ecs-cd-pipeline, sets `IMAGE_TAG=...` unexported in pre_build and
  uses it in build; docs/infra.md, "The buildspec", lists every source and what it shows); each command
  is its own script (/codebuild/output/tmp/script.sh in CodeBuild's messages), so shell options such as
  `set -e`, functions and array attributes do not carry over (Shell below);
- a phase's commands stop at the first that exits non-zero ("COMMAND_EXECUTION_ERROR: Error while executing
  command: C. Reason: exit status N"); its `finally` commands run whatever happened; `on-failure: CONTINUE`
  goes on to the next phase, ABORT (the default) does not;
- after a failed INSTALL or PRE_BUILD the build goes to FINALIZING; after a failed BUILD, POST_BUILD still
  runs; CODEBUILD_BUILD_SUCCEEDING is 1 until a phase fails, then 0;
- `env: exported-variables` are read from the shell when the last phase has ended.
Privileged mode: the managed images start the Docker daemon themselves; here the plan's `daemons` are
started before the first phase (the dockerd stand-in), and not at all without privileged mode.

Run: `codebuild_agent.py PLAN.json` (PLAN names the result and log files).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PHASES = ("INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD")
TO_FINALIZING_ON_FAILURE = ("INSTALL", "PRE_BUILD")
SCRIPT = "/codebuild/output/tmp/script.sh"


# Bash's own variables, which a new bash sets for itself: never carried from one command to the next.
OWN_VARIABLES = (
    "_|IFS|PS4|OPTIND|OPTERR|BASH|BASH_*|BASHOPTS|SHELLOPTS|COMP_WORDBREAKS|HOSTNAME|HOSTTYPE|MACHTYPE|"
    "OSTYPE|SHLVL|PWD|OLDPWD|__cb_*"
)
# What a command's shell leaves for the next: every plain variable (`declare --`) and exported one
# (`declare -x`), or, with the plan's "carry_unexported": false, the exported ones only (the narrowest reading
# of the documentation, which a buildspec can be checked against: tests/infra/test_buildspec.py).
CARRIED = {True: '"declare -- "*|"declare -x "*', False: '"declare -x "*'}
SAVE_STATE = """__cb_save() {{
  __cb_rc=$?
  pwd > "$__cb_dir/cwd"
  if [ -n "${{BASH_VERSION-}}" ]; then
    for __cb_v in $(compgen -v); do
      case "$__cb_v" in {own}) continue ;; esac
      __cb_d=$(declare -p "$__cb_v" 2>/dev/null) || continue
      case "$__cb_d" in {carried}) printf '%s\\n' "$__cb_d" ;; esac
    done > "$__cb_dir/state.new"
  else
    export -p > "$__cb_dir/state.new"
  fi
  mv "$__cb_dir/state.new" "$__cb_dir/state"
  exit "$__cb_rc"
}}
trap __cb_save EXIT
"""


class Shell:
    """The build's commands, each its own script in a new shell process (`env: shell`'s, else /bin/sh), as
    CodeBuild's agent runs /codebuild/output/tmp/script.sh: variables (exported or not, plain strings) and
    the working directory carry over to the next command; shell options (`set -e`), functions, arrays and
    attributes do not. A command's exit status is its script's."""

    def __init__(self, plan: dict[str, Any], log: Any) -> None:
        shell, env, cwd, script = plan["shell"], plan["env"], plan["src_dir"], plan.get("script", SCRIPT)
        scratch = Path(plan["scratch_dir"])
        scratch.mkdir(parents=True, exist_ok=True)
        self.shell, self.env, self.log, self.scratch = shell, env, log, scratch
        carried = CARRIED[bool(plan.get("carry_unexported", True))]
        self.save_state = SAVE_STATE.format(own=OWN_VARIABLES, carried=carried)
        (scratch / "cwd").write_text(cwd + "\n", encoding="utf-8")
        (scratch / "state").write_text("", encoding="utf-8")
        self.script = Path(script)
        self.script.parent.mkdir(parents=True, exist_ok=True)

    def run(self, command: str, *, quiet: bool = False, extra: dict[str, str] | None = None) -> int:
        """Run `command`; the log gets CodeBuild's `Running command` line unless quiet."""
        prelude = (
            f'__cb_dir={self.scratch}\n. "$__cb_dir/state"\n'
            + "".join(f"export {k}='{v}'\n" for k, v in (extra or {}).items())
            + f'cd "$(cat "$__cb_dir/cwd")"\n{self.save_state}'
        )
        self.script.write_text(prelude + command + "\n", encoding="utf-8")
        if not quiet:
            self.log.write(f"\n[Container] Running command {command}\n")
            self.log.flush()
        done = subprocess.run(  # noqa: S603 - the buildspec's own shell, as CodeBuild runs it
            [self.shell, str(self.script)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=self.env,
            check=False,
        )
        if done.returncode != 0 and not quiet:
            self.log.write(
                f"\n[Container] Command did not exit successfully {command} exit status {done.returncode}\n"
            )
        return done.returncode

    def value(self, name: str) -> str | None:
        """A variable's value as the last command left it (None when it is unset)."""
        target = self.scratch / "value"
        status = self.run(f'printf \'%s\' "${{{name}-}}" > {target}; [ -n "${{{name}+x}}" ]', quiet=True)
        return target.read_text(encoding="utf-8") if status == 0 else None


class Report:
    """The result file the host side reads: phases so far, current phase, status, exported variables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"phases": [], "currentPhase": "", "buildStatus": "IN_PROGRESS"}

    def begin(self, phase: str) -> dict[str, Any]:
        entry = {"phaseType": phase, "startTime": time.time()}
        self.data["phases"].append(entry)
        self.data["currentPhase"] = phase
        self.write()
        return entry

    def end(self, entry: dict[str, Any], status: str, context: str = "") -> None:
        entry.update(phaseStatus=status, endTime=time.time())
        entry["durationInSeconds"] = int(entry["endTime"] - entry["startTime"])
        entry["contexts"] = [{"statusCode": "COMMAND_EXECUTION_ERROR", "message": context}] if context else []
        self.write()

    def write(self) -> None:
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        scratch.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        scratch.replace(self.path)


def run_phase(shell: Shell, phase: dict[str, Any], env_succeeding: list[bool]) -> tuple[bool, str]:
    """The phase's commands to the first failure, then its `finally`; (succeeded, context message)."""
    succeeding = {"CODEBUILD_BUILD_SUCCEEDING": "1" if all(env_succeeding) else "0"}
    failed = ""
    for command in phase.get("commands", []):
        status = shell.run(command, extra=succeeding)
        if status != 0:
            failed = f"Error while executing command: {command}. Reason: exit status {status}"
            break
    for command in phase.get("finally", []):
        status = shell.run(command, extra=succeeding)
        if status != 0 and not failed:
            failed = f"Error while executing command: {command}. Reason: exit status {status}"
    return not failed, failed


def start_daemons(plan: dict[str, Any], log: Any) -> list[subprocess.Popen[bytes]]:
    started = []
    for argv in plan.get("daemons", []):
        started.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
    for path in plan.get("daemon_sockets", []):
        deadline = time.monotonic() + 10
        while not Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return started


def run_build(plan: dict[str, Any], report: Report, log: Any) -> None:
    shell = Shell(plan, log)
    succeeding: list[bool] = []
    phases = {p["name"]: p for p in plan["phases"]}
    build_failed_phase = ""
    for name in PHASES:
        if build_failed_phase in TO_FINALIZING_ON_FAILURE:
            break
        if build_failed_phase and name != "POST_BUILD":
            continue
        entry = report.begin(name)
        ok, context = run_phase(shell, phases[name], succeeding) if name in phases else (True, "")
        report.end(entry, "SUCCEEDED" if ok else "FAILED", context)
        succeeding.append(ok)
        continue_anyway = phases.get(name, {}).get("on_failure", "ABORT") == "CONTINUE"
        if not ok and not continue_anyway and not build_failed_phase:
            build_failed_phase = name
    exported = [{"name": n, "value": shell.value(n) or ""} for n in plan.get("exported_variables", [])]
    report.data["exportedEnvironmentVariables"] = exported
    report.data["buildStatus"] = "SUCCEEDED" if all(succeeding) else "FAILED"


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    report = Report(Path(plan["result"]))
    with open(plan["log"], "a", encoding="utf-8") as log:
        daemons = start_daemons(plan, log)
        try:
            run_build(plan, report, log)
        finally:
            for daemon in daemons:
                daemon.terminate()
    entry = report.begin("FINALIZING")
    report.end(entry, "SUCCEEDED")
    report.data["currentPhase"] = "COMPLETED"
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

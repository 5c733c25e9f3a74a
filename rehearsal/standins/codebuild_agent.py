#!/usr/bin/python3
"""Stand-in for the CodeBuild agent inside the build container: runs a buildspec's phases and reports.

The host side (rehearsal/codebuild.py) reads the buildspec, merges the environment and writes a plan (JSON);
this program, stdlib only, runs in the build container and writes its progress and result (JSON) as it
goes, so BatchGetBuilds can show the current phase. Contract (CodeBuild User Guide: "Build specification
reference" build-spec-ref.html, "Shells and commands in build environments" build-env-ref-cmd.html,
"Build phase transitions" view-build-details-phases.html, "Environment variables in build environments"):

- version 0.2: every command of every phase runs in the same shell instance, so a `cd`, a variable or a
  function set by one command is there for the next ones (here: one shell process, `env: shell`'s, else
  /bin/sh; each command is sourced from a file with stdin from /dev/null);
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
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PHASES = ("INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD")
TO_FINALIZING_ON_FAILURE = ("INSTALL", "PRE_BUILD")
POLL_S = 0.02


class Shell:
    """One shell process for the whole build; `run(command)` is that command's exit status.

    Each command is written to a file and sourced (`. FILE </dev/null`), so it may read stdin, `cd`, set
    variables or define functions without disturbing the next; its exit status is written to a file of its
    own, which this side waits for (or for the shell's death: `exit` in a command ends the shell, as it
    ends CodeBuild's)."""

    def __init__(self, shell: str, env: dict[str, str], cwd: str, log: Any, scratch: Path) -> None:
        self.log, self.scratch, self.count = log, scratch, 0
        self.process = subprocess.Popen(  # noqa: S603 - the buildspec's own shell, as CodeBuild runs it
            [shell], stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True
        )

    def run(self, command: str, *, quiet: bool = False) -> int:
        """Source `command` in the shell; the log gets CodeBuild's `Running command` line unless quiet."""
        self.count += 1
        script, status = self.scratch / f"command-{self.count}.sh", self.scratch / f"status-{self.count}"
        script.write_text(command + "\n", encoding="utf-8")
        if not quiet:
            self.log.write(f"\n[Container] Running command {command}\n")
            self.log.flush()
        try:
            assert self.process.stdin is not None  # noqa: S101 - set by Popen(stdin=PIPE)
            self.process.stdin.write(f". {script} </dev/null\nprintf '%d\\n' $? > {status}.tmp && mv {status}.tmp {status}\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return self.process.wait() or 255
        while not status.exists():
            if self.process.poll() is not None:
                return self.process.returncode or 255
            time.sleep(POLL_S)
        return int(status.read_text(encoding="utf-8").strip() or 255)

    def value(self, name: str) -> str | None:
        """A variable's value in the shell now (None when it is unset)."""
        status = self.run(
            f"printf '%s' \"${{{name}-}}\" > {self.scratch}/value; [ -n \"${{{name}+x}}\" ]", quiet=True
        )
        return (self.scratch / "value").read_text(encoding="utf-8") if status == 0 else None

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None  # noqa: S101 - set by Popen(stdin=PIPE)
            self.process.stdin.close()
            self.process.wait()


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
    shell.run(f"export CODEBUILD_BUILD_SUCCEEDING={1 if all(env_succeeding) else 0}", quiet=True)
    failed = ""
    for command in phase.get("commands", []):
        status = shell.run(command)
        if status != 0:
            failed = f"Error while executing command: {command}. Reason: exit status {status}"
            break
    for command in phase.get("finally", []):
        status = shell.run(command)
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
    scratch = Path(plan["scratch_dir"])
    scratch.mkdir(parents=True, exist_ok=True)
    shell = Shell(plan["shell"], plan["env"], plan["src_dir"], log, scratch)
    succeeding: list[bool] = []
    try:
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
    finally:
        shell.close()
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

"""A started build of the CodeBuild stand-in: its thread, its phases as the API reports them, stop, timeout.

The phases before the buildspec's (SUBMITTED, QUEUED, PROVISIONING, DOWNLOAD_SOURCE) are the service's
own and recorded here; INSTALL to FINALIZING come from the agent's result file in the build container.
A failure before the buildspec runs (the source cannot be fetched, the buildspec is refused) fails the
phase it happened in with the reason in its context, as CodeBuild reports CLIENT_ERROR or YAML_FILE_ERROR.
StopBuild kills the container (buildStatus STOPPED); exceeding timeoutInMinutes kills it too (TIMED_OUT).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from rehearsal import codebuild_run
from rehearsal.codebuild_run import BuildRequest, Machine, Overlay

DEFAULT_TIMEOUT_MINUTES = 60


@dataclass
class BuildExecution:
    build_id: str
    number: int
    project: Mapping[str, Any]
    env_override: Mapping[str, str]
    buildspec_override: str | None
    service: Mapping[str, Any]
    machine: Machine
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = "IN_PROGRESS"
    host_phases: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _stopping: str = ""
    _thread: threading.Thread | None = None

    @property
    def uuid(self) -> str:
        return self.build_id.split(":", 1)[1]

    @property
    def directory(self) -> Any:
        return self.machine.work_dir / self.uuid

    def start(self) -> None:
        for phase in ("SUBMITTED", "QUEUED"):
            self._phase(phase).update(phaseStatus="SUCCEEDED", endTime=time.time(), durationInSeconds=0)
        self._thread = threading.Thread(target=self._run, name=self.build_id, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = "STOPPED"
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def _phase(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"phaseType": name, "startTime": time.time()}
        self.host_phases.append(entry)
        return entry

    def _fail_phase(self, entry: dict[str, Any], code: str, message: str) -> None:
        entry.update(
            phaseStatus="FAILED", endTime=time.time(), contexts=[{"statusCode": code, "message": message}]
        )
        self.status = "FAILED"

    def _fetch(self, location: str) -> bytes:
        bucket, _, key = location.partition("/")
        s3 = boto3.session.Session(
            aws_access_key_id=self.service["access_key_id"],
            aws_secret_access_key=self.service["secret_access_key"],
            region_name=self.machine.region,
        ).client("s3", endpoint_url=self.service["emulator"])
        body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def _request(self) -> BuildRequest:
        return BuildRequest(
            build_id=self.build_id,
            build_number=self.number,
            project=self.project,
            env_override=self.env_override,
            buildspec_override=self.buildspec_override,
            fetch_source=self._fetch,
            extra_env=self.service.get("build_env", {}),
        )

    def _run(self) -> None:
        try:
            with Overlay(self.machine.lower_dirs, self.directory) as root:
                provisioning = self._phase("PROVISIONING")
                provisioning.update(phaseStatus="SUCCEEDED", endTime=time.time())
                download = self._phase("DOWNLOAD_SOURCE")
                try:
                    codebuild_run.prepare(root, self._request(), self.machine)
                except Exception as error:
                    self._fail_phase(download, "CLIENT_ERROR", f"{type(error).__name__}: {error}")
                    return
                download.update(phaseStatus="SUCCEEDED", endTime=time.time())
                self._contain(root)
        except Exception as error:
            self.status = "FAULT"
            context = {"statusCode": "FAULT", "message": repr(error)}
            self.host_phases.append(
                {"phaseType": "PROVISIONING", "phaseStatus": "FAULT", "contexts": [context]}
            )
        finally:
            self.ended = time.time()

    def _contain(self, root: Any) -> None:
        timeout_s = 60 * int(self.project.get("timeoutInMinutes") or DEFAULT_TIMEOUT_MINUTES)
        with (self.directory / "nspawn.log").open("ab") as out:
            self._process = subprocess.Popen(  # noqa: S603 - systemd-nspawn, argv built here, no shell
                codebuild_run.container_command(root, self.machine), stdout=out, stderr=subprocess.STDOUT
            )
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._stopping = "TIMED_OUT"
                self._process.terminate()
                self._process.wait()
        self.result = codebuild_run.read_result(root)
        (self.directory / "build.log").write_bytes((root / codebuild_run.LOG.lstrip("/")).read_bytes())
        if self._stopping:
            self.status = self._stopping
        elif self.result.get("currentPhase") == "COMPLETED":
            self.status = str(self.result.get("buildStatus", "FAULT"))
        else:
            self.status = "FAULT"  # the agent never finished: the container died under it

    def _environment_variables(self) -> list[dict[str, str]]:
        """The project's variables with StartBuild's overrides in them, as BatchGetBuilds shows a build's
        environment (the override replaces a project variable of the same name)."""
        merged = {v["name"]: dict(v) for v in self.project.get("environmentVariables", [])}
        for name, value in self.env_override.items():
            merged[name] = {"name": name, "value": value, "type": "PLAINTEXT"}
        return list(merged.values())

    def describe(self) -> dict[str, Any]:
        region, account, project = self.machine.region, self.service["account"], self.project
        group = f"/aws/codebuild/{project['name']}"
        agent_phases = self.result.get("phases", []) if self.result else []
        done = self.ended is not None
        phases = [*self.host_phases, *agent_phases]
        if done:
            phases.append({"phaseType": "COMPLETED", "startTime": self.ended})
        return {
            "id": self.build_id,
            "arn": f"arn:aws:codebuild:{region}:{account}:build/{self.build_id}",
            "buildNumber": self.number,
            "startTime": self.started,
            **({"endTime": self.ended} if done else {}),
            "currentPhase": "COMPLETED" if done else (phases[-1]["phaseType"] if phases else "SUBMITTED"),
            "buildStatus": self.status if done else "IN_PROGRESS",
            "projectName": project["name"],
            "phases": phases,
            "source": project.get("source", {}),
            "environment": {
                "type": project.get("type", ""),
                "image": project.get("image", ""),
                "computeType": project.get("computeType", ""),
                "privilegedMode": bool(project.get("privilegedMode")),
                "environmentVariables": self._environment_variables(),
            },
            "serviceRole": project.get("serviceRole", ""),
            "logs": {
                "groupName": group,
                "streamName": self.uuid,
                "deepLink": f"https://console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#logEvent:group={group};stream={self.uuid}",
            },
            "timeoutInMinutes": int(project.get("timeoutInMinutes") or DEFAULT_TIMEOUT_MINUTES),
            "buildComplete": done,
            "initiator": "rehearsal",
            "exportedEnvironmentVariables": self.result.get("exportedEnvironmentVariables", [])
            if done
            else [],
        }

"""Stand-in for the AWS CodeBuild API: StartBuild, BatchGetBuilds and StopBuild, for the projects of the
stack, so the real custom-resource handlers drive builds that really run the buildspec.

Protocol: JSON 1.1, as botocore resolves it for this service (codebuild/2016-10-06/service-2.json lists
smithy-rpc-v2-cbor and json; botocore 1.44 picks json): POST /, `X-Amz-Target: CodeBuild_20161006.<Op>`,
`Content-Type: application/x-amz-json-1.1`; errors are `{"__type": ..., "message": ...}` with 400. Shapes
from the same model: a Build has id (`<project>:<uuid>`), arn, buildNumber, startTime/endTime (epoch
seconds), currentPhase, buildStatus (IN_PROGRESS, SUCCEEDED, FAILED, FAULT, TIMED_OUT, STOPPED), phases
(phaseType, phaseStatus, times, contexts), logs (groupName, streamName, deepLink), buildComplete and
exportedEnvironmentVariables; BatchGetBuilds answers unknown ids in buildsNotFound. An unknown project is
ResourceNotFoundException; an environment override of a type other than PLAINTEXT, or a build started
with an override this stand-in does not implement, is InvalidInputException naming it. A repeated
idempotencyToken (5 minutes) answers the build it started; with other parameters it is refused.

The build container's credentials come from GET /credentials (the container credentials provider's
AWS_CONTAINER_CREDENTIALS_FULL_URI, loopback): the CodeBuild service role's, its own access key, which the
emulator's KMS does not know (the role has no KMS rights). Run as
`python -m rehearsal.codebuild --listen HOST:PORT --config FILE` (FILE: see Config).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

from rehearsal import serving
from rehearsal.codebuild_exec import BuildExecution
from rehearsal.codebuild_run import Machine

TARGET_PREFIX = "CodeBuild_20161006."
SUPPORTED_OVERRIDES = frozenset(
    {
        "projectName",
        "environmentVariablesOverride",
        "buildspecOverride",
        "sourceTypeOverride",
        "sourceLocationOverride",
        "idempotencyToken",
    }
)
IDEMPOTENCY_S = 300.0  # "valid for 5 minutes" (the model's idempotencyToken documentation)
ROLE_ACCESS_KEY = "LOCALCODEBUILDROLE01"  # 20 upper-case letters and digits, as an AWS access key id
ROLE_SECRET_KEY = "local-codebuild-role-secret"  # noqa: S105 - the emulator's, not a secret


class ApiError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


@dataclass
class Service:
    """The stand-in's state: the projects (from the template) and every build started."""

    config_path: Path  # re-read by every StartBuild: a stack update may change a project
    builds: dict[str, BuildExecution] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, tuple[float, str, str]] = field(
        default_factory=dict
    )  # token: (when, request, build id)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.config_path.read_text(encoding="utf-8"))
        return loaded

    @staticmethod
    def machine(c: dict[str, Any]) -> Machine:
        binds = [(Path(source), inside) for source, inside in c.get("binds", [])]
        lower = [Path(p) for p in c["lower_dirs"]]
        return Machine(lower, Path(c["netns"]), Path(c["work_dir"]), c["region"], binds)

    def start_build(self, body: dict[str, Any]) -> dict[str, Any]:
        """A new build, or the one a repeated idempotencyToken already started (within 5 minutes; the same
        token with other parameters is the model's "parameter mismatch error")."""
        token, request = body.get("idempotencyToken"), json.dumps(body, sort_keys=True)
        with self.lock:
            seen = self.tokens.get(token or "")
        if seen is not None and time.monotonic() - seen[0] < IDEMPOTENCY_S:
            if seen[1] != request:
                raise ApiError(
                    "InvalidInputException", f"idempotencyToken {token} was used with other parameters"
                )
            return {"build": self.builds[seen[2]].describe()}
        started = self._start(body)
        if token:
            with self.lock:
                self.tokens[token] = (time.monotonic(), request, started["build"]["id"])
        return started

    def _start(self, body: dict[str, Any]) -> dict[str, Any]:
        unsupported = set(body) - SUPPORTED_OVERRIDES
        if unsupported:
            raise ApiError("InvalidInputException", f"not supported by the stand-in: {sorted(unsupported)}")
        name, config = body.get("projectName", ""), self.config
        projects = config["projects"]
        if name not in projects:
            arn = f"arn:aws:codebuild:{config['region']}:{config['account']}:project/{name}"
            raise ApiError("ResourceNotFoundException", f"Project cannot be found: {arn}")
        override = {}
        for variable in body.get("environmentVariablesOverride", []):
            if variable.get("type", "PLAINTEXT") != "PLAINTEXT":
                raise ApiError("InvalidInputException", f"{variable['type']} variables are not supported")
            override[variable["name"]] = variable["value"]
        project = dict(projects[name])
        if "sourceTypeOverride" in body or "sourceLocationOverride" in body:
            source = project.get("source", {})
            project["source"] = {
                "type": body.get("sourceTypeOverride", source.get("type")),
                "location": body.get("sourceLocationOverride", source.get("location")),
            }
        with self.lock:
            self.numbers[name] = self.numbers.get(name, 0) + 1
            build_id = f"{name}:{uuid.uuid4()}"
            execution = BuildExecution(
                build_id=build_id,
                number=self.numbers[name],
                project=project,
                env_override=override,
                buildspec_override=body.get("buildspecOverride"),
                service=config,
                machine=self.machine(config),
            )
            self.builds[build_id] = execution
        execution.start()
        return {"build": execution.describe()}

    def batch_get_builds(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("ids") or []
        if not 1 <= len(ids) <= 100:
            raise ApiError("InvalidInputException", "ids must have between 1 and 100 members")
        found = [self.builds[i].describe() for i in ids if i in self.builds]
        return {"builds": found, "buildsNotFound": [i for i in ids if i not in self.builds]}

    def stop_build(self, body: dict[str, Any]) -> dict[str, Any]:
        build = self.builds.get(body.get("id", ""))
        if build is None:
            raise ApiError("ResourceNotFoundException", f"Build {body.get('id')} does not exist")
        build.stop()
        return {"build": build.describe()}


class Handler(BaseHTTPRequestHandler):
    service: ClassVar[Service]

    def do_POST(self) -> None:
        target = self.headers.get("X-Amz-Target", "")
        operations = {
            "StartBuild": self.service.start_build,
            "BatchGetBuilds": self.service.batch_get_builds,
            "StopBuild": self.service.stop_build,
        }
        operation = target.removeprefix(TARGET_PREFIX)
        try:
            self._check(target, operation in operations)
            length = int(self.headers.get("Content-Length", "0") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            self._answer(200, operations[operation](body))
        except ApiError as error:
            self._answer(400, {"__type": error.kind, "message": error.message})
        except ValueError as error:
            self._answer(400, {"__type": "SerializationException", "message": str(error)})

    def _check(self, target: str, known: bool) -> None:
        if not target.startswith(TARGET_PREFIX) or not known:
            raise ApiError("UnknownOperationException", f"{target or 'no X-Amz-Target'} is not served")
        if "Credential=" not in self.headers.get("Authorization", ""):
            raise ApiError("MissingAuthenticationTokenException", "the request is not signed")

    def do_GET(self) -> None:
        if self.path != "/credentials":
            self._answer(404, {"message": "not found"})
            return
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        self._answer(
            200,
            {
                "AccessKeyId": ROLE_ACCESS_KEY,
                "SecretAccessKey": ROLE_SECRET_KEY,
                "Token": "local-codebuild-role-session",
                "Expiration": expiration,
            },
        )

    def _answer(self, code: int, value: dict[str, Any]) -> None:
        serving.answer(self, code, json.dumps(value, default=str).encode(), "application/x-amz-json-1.1")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("codebuild: " + (format % args) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rehearsal.codebuild", description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--config", type=Path, required=True, help="JSON: projects, image layers, netns, ...")
    args = p.parse_args(argv)
    Handler.service = Service(args.config)
    return serving.serve_forever(args.listen, Handler)


if __name__ == "__main__":
    sys.exit(main())

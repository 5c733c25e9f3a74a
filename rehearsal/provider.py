"""The CDK Provider framework, replayed in-process: a custom resource's lifecycle event through the stack's
own user handlers (on-event, then is-complete until it says so), as the framework's Lambda functions and
waiter state machine run them.

Which handlers: the framework's on-event function names the user's functions in its environment
(USER_ON_EVENT_FUNCTION_ARN, USER_IS_COMPLETE_FUNCTION_ARN: `Fn::GetAtt [<Function>, Arn]`); each user
function's `Handler` (`module.function`) is imported from its code asset directory in cdk.out, so the code
that runs is what the deploy uploads, with the function's `Environment.Variables` set while it runs.
Rules (aws-cdk-lib `custom_resources` README, "Provider Framework": "Handling Lifecycle Events: onEvent",
"Asynchronous Providers: isComplete", "Physical Resource IDs"): the event has RequestType,
LogicalResourceId, ResourceType, RequestId, StackId, ResourceProperties (strings, as CloudFormation sends
them), OldResourceProperties and PhysicalResourceId for Update and Delete; on-event's PhysicalResourceId
defaults to the RequestId on Create and the current id otherwise, and must stay the same on Delete;
is-complete gets the event merged with on-event's answer and is asked until IsComplete (Data only then,
merged over on-event's) or the total timeout ("Operation timed out"); an exception is a FAILED response
with its message. A new PhysicalResourceId on Update is a replacement: CloudFormation deletes the old
one in the cleanup phase (the harness sends that Delete; see Stack.cleanup in rehearsal/deploy.py).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.local.stack import patched_environ
from rehearsal.cfn import Resolver
from rehearsal.template import Synthesized

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
ON_EVENT_ENV, IS_COMPLETE_ENV = "USER_ON_EVENT_FUNCTION_ARN", "USER_IS_COMPLETE_FUNCTION_ARN"


class CustomResourceFailed(RuntimeError):
    """The FAILED response CloudFormation would get, with its reason."""


@dataclass(frozen=True)
class Response:
    physical_id: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class UserFunction:
    logical_id: str
    handler: Handler
    environment: Mapping[str, str]

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        with patched_environ(self.environment):
            answer = self.handler(json.loads(json.dumps(event)), None)
        if not isinstance(answer, dict):
            raise CustomResourceFailed(f"{self.logical_id} returned {type(answer).__name__}, not an object")
        return answer


def _asset_dir(synthesized: Synthesized, function: Mapping[str, Any], resolver: Resolver) -> Path:
    """The function's code asset in cdk.out: its Code.S3Key is `<asset hash>.zip`, the manifest's id."""
    key = resolver.text(function["Properties"]["Code"]["S3Key"])
    asset = synthesized.file_assets().get(key.removesuffix(".zip"))
    if asset is None or asset["source"]["packaging"] != "zip":
        raise LookupError(
            f"the handler's code {key} is not a zip asset of this synth (inline or image code?)"
        )
    return synthesized.outdir / str(asset["source"]["path"])


def load_function(
    synthesized: Synthesized, logical_id: str, resolver: Resolver, extra_env: Mapping[str, str]
) -> UserFunction:
    """The user function's handler, imported from its asset, with its environment rendered."""
    function = synthesized.template["Resources"][logical_id]
    module_name, _, attribute = function["Properties"]["Handler"].rpartition(".")
    directory = _asset_dir(synthesized, function, resolver)
    unique = f"rehearsal_handler_{logical_id}"
    spec = importlib.util.spec_from_file_location(unique, directory / f"{module_name.replace('.', '/')}.py")
    if spec is None or spec.loader is None:
        raise LookupError(f"cannot import {module_name} from {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(directory))  # the handler's own imports resolve in its asset, as in Lambda
    try:
        with patched_environ(extra_env):
            spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(directory))
    variables = function["Properties"].get("Environment", {}).get("Variables", {})
    rendered = {name: resolver.text(value) for name, value in variables.items()}
    return UserFunction(logical_id, getattr(module, attribute), {**extra_env, **rendered})


def user_function_ids(synthesized: Synthesized, service_token_function: str) -> tuple[str, str | None]:
    """(on-event, is-complete) logical ids, named by the framework function's environment."""
    props = synthesized.properties(service_token_function)
    variables = props.get("Environment", {}).get("Variables", {})

    def target(name: str) -> str | None:
        value = variables.get(name)
        return str(value["Fn::GetAtt"][0]) if isinstance(value, dict) and "Fn::GetAtt" in value else None

    on_event = target(ON_EVENT_ENV)
    if on_event is None:
        raise LookupError(
            f"{service_token_function} has no {ON_EVENT_ENV}: not a Provider framework function"
        )
    return on_event, target(IS_COMPLETE_ENV)


@dataclass(frozen=True)
class Provider:
    on_event: UserFunction
    is_complete: UserFunction | None
    stack_id: str
    query_interval_s: float = 1.0
    total_timeout_s: float = 900.0

    def request(
        self, request_type: str, logical_id: str, resource: Mapping[str, Any], **fields: Any
    ) -> Response:
        """One lifecycle event (`fields`: ResourceProperties, OldResourceProperties, PhysicalResourceId)."""
        event: dict[str, Any] = {
            "RequestType": request_type,
            "LogicalResourceId": logical_id,
            "ResourceType": resource["Type"],
            "RequestId": str(uuid.uuid4()),
            "StackId": self.stack_id,
            **fields,
        }
        try:
            answer = self.on_event(event)
        except CustomResourceFailed:
            raise
        except Exception as error:
            raise CustomResourceFailed(f"{type(error).__name__}: {error}") from error
        default_id = event["RequestId"] if request_type == "Create" else event["PhysicalResourceId"]
        physical_id = str(answer.get("PhysicalResourceId") or default_id)
        if request_type == "Delete" and physical_id != event["PhysicalResourceId"]:
            raise CustomResourceFailed("DELETE: cannot change the physical resource ID")
        data = dict(answer.get("Data") or {})
        if self.is_complete is not None:
            data |= self._wait({**event, **answer, "PhysicalResourceId": physical_id})
        return Response(physical_id, {k: str(v) for k, v in data.items()})

    def _wait(self, event: dict[str, Any]) -> dict[str, Any]:
        assert self.is_complete is not None  # noqa: S101 - only called with an is-complete handler
        deadline = time.monotonic() + self.total_timeout_s
        while time.monotonic() < deadline:
            try:
                answer = self.is_complete(event)
            except Exception as error:
                raise CustomResourceFailed(f"{type(error).__name__}: {error}") from error
            if answer.get("IsComplete"):
                return dict(answer.get("Data") or {})
            if answer.get("Data"):
                raise CustomResourceFailed('"Data" is not allowed if "IsComplete" is "False"')
            time.sleep(self.query_interval_s)
        raise CustomResourceFailed("Operation timed out")

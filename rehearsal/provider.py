"""A Lambda-backed custom resource, replayed in-process as CloudFormation drives it: the request goes to the
ServiceToken's function, imported from its code asset in cdk.out, and the answer is whatever that function
PUTs to the request's presigned ResponseURL, here a stand-in https endpoint on loopback that records it (a
certificate made when it starts, which the function trusts through SSL_CERT_FILE while it runs).

Which function: the resource's `ServiceToken` (`Fn::GetAtt [<Function>, Arn]`); its `Handler`
(`package.module.function`) is imported from its asset directory, so the code that runs is what the deploy
uploads, with the function's `Environment.Variables` set and a context whose remaining time counts down
from its `Timeout`. The request (CloudFormation User Guide, "Custom resource request types": Create,
Update, Delete) carries RequestType, RequestId, ResponseURL, ResourceType, LogicalResourceId, StackId,
ResourceProperties (strings), OldResourceProperties and PhysicalResourceId for Update and Delete.
The answer is checked against "Custom resource response objects" (crpg-ref-responses): one PUT, a JSON body
of at most 4,096 bytes; Status SUCCESS or FAILED; Reason required with FAILED; PhysicalResourceId a
non-empty string of at most 1 KB; StackId, RequestId and LogicalResourceId copied verbatim; NoEcho a
boolean; Data an object. Stricter than CloudFormation: no other field, Data values strings, a Delete may
not change the physical id, and the ResponseURL may appear in no log record of the invocation.
A new PhysicalResourceId on Update is a replacement: CloudFormation deletes the old one in the cleanup
phase (the harness sends that Delete; see Stack.cleanup in rehearsal/deploy.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import secrets
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from app.local.stack import patched_environ
from rehearsal.cfn import Resolver
from rehearsal.template import Synthesized
from rehearsal.tls import loopback_identity

Handler = Callable[[dict[str, Any], Any], Any]
MAX_BODY_BYTES, MAX_PHYSICAL_ID_BYTES = 4096, 1024
RESPONSE_FIELDS = {"Status", "Reason", "PhysicalResourceId", "StackId", "RequestId", "LogicalResourceId"}
RESPONSE_FIELDS |= {"NoEcho", "Data"}
DEFAULT_TIMEOUT_S = 3  # Lambda's default Timeout, when the function names none


class CustomResourceFailed(RuntimeError):
    """The FAILED response CloudFormation would get (or no valid answer at all), with its reason."""


@dataclass(frozen=True)
class Response:
    physical_id: str
    data: Mapping[str, str]


@dataclass(frozen=True)
class Put:
    path: str
    content_type: str | None
    body: bytes


@dataclass
class ResponseEndpoint:
    """The presigned S3 URL's stand-in (https, as CloudFormation's): records every PUT (path, Content-Type,
    body); answers 200. `trusted()` makes code that builds a default TLS context trust its certificate."""

    puts: list[Put] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _ca_file: str = ""

    def url(self, request_id: str) -> str:
        assert self._server is not None  # noqa: S101 - only inside serving()
        port = self._server.server_address[1]
        # Shaped like CloudFormation's (a key naming the stack and request, then the signature's query).
        return f"https://127.0.0.1:{port}/stack-id%7C{request_id}?X-Amz-Signature={secrets.token_hex(32)}"

    def taken(self, request_id: str) -> list[Put]:
        return [put for put in self.puts if put.path.split("?", 1)[0].endswith(f"%7C{request_id}")]

    @contextmanager
    def trusted(self) -> Iterator[None]:
        """SSL_CERT_FILE names this endpoint's certificate (OpenSSL reads it whenever a default context is
        made, as urllib's is for each connection); restored afterwards."""
        assert self._ca_file  # noqa: S101 - only inside serving()
        with patched_environ({"SSL_CERT_FILE": self._ca_file}):
            yield

    @contextmanager
    def serving(self) -> Iterator[ResponseEndpoint]:
        endpoint = self

        class Recorder(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                content = self.rfile.read(length)
                endpoint.puts.append(Put(self.path, self.headers.get("Content-Type"), content))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # the path carries the signature: never printed

        with tempfile.TemporaryDirectory(prefix="response-url-tls-") as directory:
            identity = loopback_identity(Path(directory))
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
            self._server.socket = identity.server_context().wrap_socket(self._server.socket, server_side=True)
            self._ca_file = str(identity.certificate)
            thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            thread.start()
            try:
                yield self
            finally:
                self._server.shutdown()
                self._server.server_close()
                self._server = None
                self._ca_file = ""


class Context:
    """The part of Lambda's context the handler reads: its remaining time, from the function's Timeout."""

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Function:
    logical_id: str
    handler: Handler
    environment: Mapping[str, str]
    timeout_s: float

    def __call__(self, event: dict[str, Any]) -> list[str]:
        """Invoke it; back: every log record it emitted at any level (formatted), for the caller."""
        records: list[str] = []
        capture = _Capture(records)
        root = logging.getLogger()
        level = root.level
        root.addHandler(capture)
        root.setLevel(logging.DEBUG)
        try:
            with patched_environ(self.environment):
                self.handler(json.loads(json.dumps(event)), Context(self.timeout_s))
        finally:
            root.setLevel(level)
            root.removeHandler(capture)
        return records


class _Capture(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(logging.Formatter().format(record))  # the message, and its traceback if any


def _asset_dir(synthesized: Synthesized, function: Mapping[str, Any], resolver: Resolver) -> Path:
    """The function's code asset in cdk.out: its Code.S3Key is `<asset hash>.zip`, the manifest's id."""
    key = resolver.text(function["Properties"]["Code"]["S3Key"])
    asset = synthesized.file_assets().get(key.removesuffix(".zip"))
    if asset is None or asset["source"]["packaging"] != "zip":
        raise LookupError(
            f"the handler's code {key} is not a zip asset of this synth (inline or image code?)"
        )
    return synthesized.outdir / str(asset["source"]["path"])


def _import(directory: Path, dotted: str, unique: str) -> Any:
    """`dotted` (package.module) from `directory`, as Lambda imports it with the asset's root on sys.path,
    under a name of its own (`unique`.module) so two assets never share a module."""
    package, _, module = dotted.partition(".")
    init = directory / package / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        unique, init, submodule_search_locations=[str(directory / package)]
    )
    if spec is None or spec.loader is None or not module:
        raise LookupError(
            f"cannot import {dotted} from {directory}: Handler must name package.module.function"
        )
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[unique] = loaded
    spec.loader.exec_module(loaded)
    return importlib.import_module(f"{unique}.{module}")


def load_function(
    synthesized: Synthesized, logical_id: str, resolver: Resolver, extra_env: Mapping[str, str]
) -> Function:
    """The function's handler, imported from its asset, with its environment rendered."""
    function = synthesized.template["Resources"][logical_id]
    properties = function["Properties"]
    module_name, _, attribute = properties["Handler"].rpartition(".")
    with patched_environ(extra_env):
        module = _import(
            _asset_dir(synthesized, function, resolver), module_name, f"rehearsal_fn_{logical_id}"
        )
    variables = properties.get("Environment", {}).get("Variables", {})
    rendered = {name: resolver.text(value) for name, value in variables.items()}
    timeout = float(properties.get("Timeout", DEFAULT_TIMEOUT_S))
    return Function(logical_id, getattr(module, attribute), {**extra_env, **rendered}, timeout)


def service_token_function(resource: Mapping[str, Any]) -> str:
    token = resource["Properties"]["ServiceToken"]
    if not (isinstance(token, dict) and "Fn::GetAtt" in token and token["Fn::GetAtt"][1] == "Arn"):
        raise LookupError(f"the ServiceToken {token!r} is not a Lambda function of this template")
    return str(token["Fn::GetAtt"][0])


def check_response(put: Put, event: Mapping[str, Any]) -> Response:
    """The recorded PUT as CloudFormation reads it (crpg-ref-responses); FAILED raises with its Reason."""
    answer = _document(put, event)
    physical_id, data = answer["PhysicalResourceId"], answer.get("Data", {})
    status, reason = answer.get("Status"), answer.get("Reason")
    if status == "FAILED":
        if not isinstance(reason, str) or not reason:
            raise CustomResourceFailed("a FAILED response without a Reason")
        raise CustomResourceFailed(reason)
    if status != "SUCCESS":
        raise CustomResourceFailed(f"Status {status!r} is neither SUCCESS nor FAILED")
    if event["RequestType"] == "Delete" and physical_id != event["PhysicalResourceId"]:
        raise CustomResourceFailed("DELETE: cannot change the physical resource ID")
    return Response(physical_id, dict(data))


def _document(put: Put, event: Mapping[str, Any]) -> dict[str, Any]:
    """The body's fields, each of the documented type and size."""
    if len(put.body) > MAX_BODY_BYTES:
        raise CustomResourceFailed(f"the response is {len(put.body)} bytes, over {MAX_BODY_BYTES}")
    if put.content_type not in (None, ""):
        raise CustomResourceFailed(
            f"Content-Type {put.content_type!r}: the presigned URL is signed without one"
        )
    try:
        answer = json.loads(put.body)
    except ValueError as error:
        raise CustomResourceFailed(f"the response is not JSON: {error}") from error
    if not isinstance(answer, dict) or set(answer) - RESPONSE_FIELDS:
        raise CustomResourceFailed(f"the response has fields CloudFormation does not define: {answer!r}")
    for name in ("StackId", "RequestId", "LogicalResourceId"):
        if answer.get(name) != event[name]:
            raise CustomResourceFailed(f"the response's {name} is not the request's, copied verbatim")
    physical_id = answer.get("PhysicalResourceId")
    if not isinstance(physical_id, str) or not 0 < len(physical_id.encode()) <= MAX_PHYSICAL_ID_BYTES:
        raise CustomResourceFailed("PhysicalResourceId must be a non-empty string of at most 1 KB")
    if not isinstance(answer.get("NoEcho", False), bool):
        raise CustomResourceFailed("NoEcho must be a boolean")
    data = answer.get("Data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CustomResourceFailed("Data must be an object of strings")
    return answer


@dataclass(frozen=True)
class CustomResource:
    function: Function
    endpoint: ResponseEndpoint
    stack_id: str

    def request(
        self, request_type: str, logical_id: str, resource: Mapping[str, Any], **fields: Any
    ) -> Response:
        """One lifecycle event (`fields`: ResourceProperties, OldResourceProperties, PhysicalResourceId)."""
        request_id = str(uuid.uuid4())
        url = self.endpoint.url(request_id)
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": f"arn:aws:lambda:::function:{self.function.logical_id}",
            "ResponseURL": url,
            "StackId": self.stack_id,
            "RequestId": request_id,
            "LogicalResourceId": logical_id,
            "ResourceType": resource["Type"],
            **fields,
        }
        try:
            with self.endpoint.trusted():
                records = self.function(event)
        except Exception as error:
            raise CustomResourceFailed(
                f"{self.function.logical_id} raised {type(error).__name__} without answering: {error}"
            ) from error
        if any(url.split("?", 1)[1] in record or url.split("?", 1)[0] in record for record in records):
            raise CustomResourceFailed(f"{self.function.logical_id} logged the request's ResponseURL")
        puts = self.endpoint.taken(request_id)
        if len(puts) != 1:
            raise CustomResourceFailed(
                f"{self.function.logical_id} answered {len(puts)} times (CloudFormation waits for one answer "
                "until the resource's ServiceTimeout)"
            )
        return check_response(puts[0], event)

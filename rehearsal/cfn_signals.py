"""Stand-in for CloudFormation's SignalResource (moto has none): what `aws cloudformation signal-resource`
on a host reaches, through AWS_ENDPOINT_URL_CLOUDFORMATION.

Contract (AWS CloudFormation API Reference, "SignalResource" and "Common Errors"): the query protocol, POST
form `Action=SignalResource&Version=2010-05-15` with StackName (the stack's name or id), LogicalResourceId,
UniqueId (1 to 64 characters) and Status (SUCCESS or FAILURE), all required; the answer is an empty
SignalResourceResponse. Refusals are `ValidationError` (400, Type Sender): `Stack with id NAME does not
exist` for another stack, `Resource ID does not exist for stack NAME` for a logical id that is not in the
template, and `Stack ARN is in STATE state and cannot be signaled` when nothing waits for signals (the
message hosts see from cfn-signal after the deploy has finished). The request must be SigV4-signed for the
cloudformation service; who signed it (the access key id) is recorded. IAM is not evaluated.

The harness opens and closes the signal window by writing the stack state file (`{"status": ...}`), as
CloudFormation accepts signals only while a resource with a creation or update policy waits.
Run as `python -m rehearsal.cfn_signals --listen HOST:PORT --stack NAME --stack-id ARN --resources IDS
--state FILE --record FILE`; each accepted signal is one JSON line in the record.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from rehearsal import serving
from rehearsal.standins.host import write_json

NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
STATUSES = ("SUCCESS", "FAILURE")
WAITING_STATES = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS")
MAX_UNIQUE_ID = 64
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class ResourceSignal:
    logical_id: str
    unique_id: str
    status: str
    access_key_id: str


@dataclass(frozen=True)
class Stack:
    name: str
    stack_id: str
    resources: frozenset[str]
    state: Path  # JSON {"status": "..."}: the harness's view of the stack's state


def stack_status(stack: Stack) -> str:
    try:
        return str(json.loads(stack.state.read_text(encoding="utf-8"))["status"])
    except (OSError, ValueError, KeyError):
        return "CREATE_COMPLETE"


def signal_from(form: Mapping[str, str], authorization: str, stack: Stack) -> ResourceSignal:
    """The signal the form carries, or Refused as CloudFormation refuses it."""
    match = _CREDENTIAL.search(authorization)
    if match is None or match[3] != "cloudformation":
        raise Refused("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    if form.get("Action") != "SignalResource" or form.get("Version") != "2010-05-15":
        raise Refused("InvalidAction", f"{form.get('Action')} (version {form.get('Version')}) is not served")
    missing = [k for k in ("StackName", "LogicalResourceId", "UniqueId", "Status") if not form.get(k)]
    if missing:
        raise Refused("ValidationError", f"1 validation error detected: {missing[0]} is required")
    if form["Status"] not in STATUSES:
        raise Refused("ValidationError", f"Value '{form['Status']}' at 'status' failed to satisfy constraint")
    if len(form["UniqueId"]) > MAX_UNIQUE_ID:
        raise Refused("ValidationError", "Value at 'uniqueId' failed to satisfy constraint: length <= 64")
    if form["StackName"] not in (stack.name, stack.stack_id):
        raise Refused("ValidationError", f"Stack with id {form['StackName']} does not exist")
    if form["LogicalResourceId"] not in stack.resources:
        raise Refused(
            "ValidationError", f"Resource {form['LogicalResourceId']} does not exist for stack {stack.name}"
        )
    status = stack_status(stack)
    if status not in WAITING_STATES:
        raise Refused(
            "ValidationError", f"Stack {stack.stack_id} is in {status} state and cannot be signaled"
        )
    return ResourceSignal(form["LogicalResourceId"], form["UniqueId"], form["Status"], match[1])


class Handler(BaseHTTPRequestHandler):
    stack: ClassVar[Stack]
    record: ClassVar[Path]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        parsed = parse_qs(self.rfile.read(length).decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[-1] for k, v in parsed.items()}
        try:
            signal = signal_from(form, self.headers.get("Authorization", ""), self.stack)
        except Refused as refused:
            self._error(refused)
            return
        with self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(signal)) + "\n")
        self._answer(
            200, f'<SignalResourceResponse xmlns="{NAMESPACE}">{self._metadata()}</SignalResourceResponse>'
        )

    def _metadata(self) -> str:
        return f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"

    def _error(self, refused: Refused) -> None:
        error = (f"<Error><Type>Sender</Type><Code>{refused.code}</Code>"
                 f"<Message>{escape(refused.message)}</Message></Error>")  # fmt: skip
        request_id = f"<RequestId>{uuid.uuid4()}</RequestId>"
        self._answer(
            refused.status, f'<ErrorResponse xmlns="{NAMESPACE}">{error}{request_id}</ErrorResponse>'
        )

    def _answer(self, code: int, xml: str) -> None:
        serving.answer(self, code, xml.encode(), "text/xml")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("cfn-signals: " + (format % args) + "\n")


def read_signals(record: Path) -> list[ResourceSignal]:
    if not record.exists():
        return []
    lines = record.read_text(encoding="utf-8").splitlines()
    return [ResourceSignal(**json.loads(line)) for line in lines if line.strip()]


def set_stack_status(state: Path, status: str) -> None:
    write_json(state, {"status": status})


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rehearsal.cfn_signals", description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--stack", required=True, help="the stack's name")
    p.add_argument("--stack-id", required=True, help="the stack's id (an ARN)")
    p.add_argument("--resources", required=True, help="the template's logical ids, comma-separated")
    p.add_argument("--state", type=Path, required=True, help="the stack state file the harness writes")
    p.add_argument("--record", type=Path, required=True, help="file of accepted signals (JSON lines)")
    args = p.parse_args(argv)
    Handler.stack = Stack(args.stack, args.stack_id, frozenset(args.resources.split(",")), args.state)
    Handler.record = args.record
    return serving.serve_forever(args.listen, Handler)


if __name__ == "__main__":
    sys.exit(main())

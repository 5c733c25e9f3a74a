"""Stand-in for a CloudFormation wait condition handle: the presigned URL the user data signals with PUT.

Contract (CloudFormation User Guide, "Create wait conditions in a CloudFormation template",
using-cfn-waitcondition.html): the body is one JSON object with `Status` (SUCCESS or FAILURE), `UniqueId`,
`Data` and `Reason`, sent with `curl -X PUT -H 'Content-Type:'`. The handle is a presigned S3 URL, whose
signature covers the Content-Type header, so a request with a non-empty Content-Type is refused as S3
refuses it (SignatureDoesNotMatch). Anything else - another method, other keys, another status, a body that
is not JSON - is refused with 400 and never recorded. `WaitCondition.Data` is `{"<UniqueId>": "<Data>"}`.

Run as `python -m rehearsal.wait_handle --listen HOST:PORT --record FILE`; one JSON line per accepted signal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

from rehearsal import serving

STATUSES = ("SUCCESS", "FAILURE")
KEYS = frozenset({"Status", "UniqueId", "Data", "Reason"})
REQUIRED = frozenset({"Status", "UniqueId"})
MAX_BODY_BYTES = 8192


class BadSignal(ValueError):
    """A PUT that CloudFormation would not take as a signal."""


@dataclass(frozen=True)
class Signal:
    status: str
    unique_id: str
    data: str
    reason: str

    @classmethod
    def from_json(cls, line: str) -> Signal:
        return cls(**json.loads(line))


def parse_signal(body: bytes) -> Signal:
    """The signal in `body`, or BadSignal naming what CloudFormation would refuse."""
    try:
        parsed: Any = json.loads(body)
    except ValueError as error:
        raise BadSignal(f"the body is not JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise BadSignal("the body must be one JSON object")
    unknown, missing = set(parsed) - KEYS, REQUIRED - set(parsed)
    if unknown:
        raise BadSignal(f"unknown keys {sorted(unknown)}; a signal has only {sorted(KEYS)}")
    if missing:
        raise BadSignal(f"missing keys {sorted(missing)}")
    if not all(isinstance(value, str) for value in parsed.values()):
        raise BadSignal("every value of a signal is a string")
    if parsed["Status"] not in STATUSES:
        raise BadSignal(f"Status {parsed['Status']!r} is not one of {', '.join(STATUSES)}")
    return Signal(parsed["Status"], parsed["UniqueId"], parsed.get("Data", ""), parsed.get("Reason", ""))


def wait_condition_data(signals: Sequence[Signal]) -> str:
    """`Fn::GetAtt <WaitCondition>.Data`: a JSON object of UniqueId to Data (the last signal per id wins)."""
    return json.dumps({s.unique_id: s.data for s in signals}, separators=(",", ":"))


class Handler(BaseHTTPRequestHandler):
    record: ClassVar[Path]

    def do_PUT(self) -> None:
        if self.headers.get("Content-Type", ""):
            self._answer(
                403, "SignatureDoesNotMatch: a presigned handle URL is signed for an empty Content-Type"
            )
            return
        length = int(self.headers.get("Content-Length", "0") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(400, f"body of {length} bytes is too large")
            return
        try:
            signal = parse_signal(self.rfile.read(length))
        except BadSignal as error:
            self._answer(400, f"refused: {error}")
            return
        with self.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(asdict(signal)) + "\n")
        self._answer(200, "")

    def do_GET(self) -> None:
        self._answer(405, "a wait condition handle takes PUT only")

    do_POST = do_GET  # noqa: N815

    def _answer(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("wait-handle: " + (format % args) + "\n")


def read_signals(record: Path) -> list[Signal]:
    if not record.exists():
        return []
    lines = record.read_text(encoding="utf-8").splitlines()
    return [Signal.from_json(line) for line in lines if line.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rehearsal.wait_handle", description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--record", type=Path, required=True, help="file of accepted signals (JSON lines)")
    args = p.parse_args(argv)
    Handler.record = args.record
    return serving.serve_forever(args.listen, Handler)


if __name__ == "__main__":
    sys.exit(main())

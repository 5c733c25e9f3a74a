"""Stand-in for the EC2 instance metadata service, IMDSv2 only (the stack sets HttpTokens=required).

Contract (Amazon EC2 User Guide, "Use the Instance Metadata Service to access instance metadata",
configuring-instance-metadata-service.html and instancedata-data-retrieval.html, and "Instance metadata
categories"): a session starts with `PUT /latest/api/token` carrying `X-aws-ec2-metadata-token-ttl-seconds`
(1-21600, else 400); a PUT with `X-Forwarded-For` is refused; every GET carries the token in
`X-aws-ec2-metadata-token`, and without a valid, unexpired one the answer is 401. Served paths: the role
name and its credentials under `meta-data/iam/security-credentials/`, `instance-id`, `placement/region`,
`placement/availability-zone` and `dynamic/instance-identity/document`. The credentials are the emulator's
local ones (`app.local.provision`); the emulator accepts them.

Run as `python -m rehearsal.imds --listen 169.254.169.254:80 --role ROLE --region R --account A
[--instance-id I] [--netns PATH]`.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
from rehearsal import serving
from rehearsal.nsjoin import setns

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name
MAX_TTL_S = 21600
CREDENTIALS_LIFETIME_S = 6 * 3600
INSTANCE_ID = "i-0rehearsal000000"
INSTANCE_TYPE = "c5.xlarge"


class Metadata:
    """The answers, by path below /latest/."""

    def __init__(self, *, role: str, region: str, account: str, instance_id: str = INSTANCE_ID) -> None:
        self.role, self.region, self.account, self.instance_id = role, region, account, instance_id
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, ttl_s: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl_s
        return token

    def valid(self, token: str | None) -> bool:
        with self._lock:
            expiry = self._tokens.get(token or "")
        return expiry is not None and time.monotonic() < expiry

    def answer(self, path: str) -> str | None:
        paths: dict[str, Callable[[], str]] = {
            "meta-data/instance-id": lambda: self.instance_id,
            "meta-data/instance-type": lambda: INSTANCE_TYPE,
            "meta-data/placement/region": lambda: self.region,
            "meta-data/placement/availability-zone": lambda: f"{self.region}a",
            "meta-data/iam/security-credentials/": lambda: self.role,
            f"meta-data/iam/security-credentials/{self.role}": self._credentials,
            "dynamic/instance-identity/document": self._identity,
        }
        producer = paths.get(path)
        return producer() if producer else None

    def _credentials(self) -> str:
        now = datetime.now(UTC)
        return json.dumps(
            {
                "Code": "Success",
                "LastUpdated": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "Type": "AWS-HMAC",
                "AccessKeyId": LOCAL_ACCESS_KEY_ID,
                "SecretAccessKey": LOCAL_SECRET_ACCESS_KEY,
                "Token": "rehearsal-session-token",
                "Expiration": (now + timedelta(seconds=CREDENTIALS_LIFETIME_S)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
            indent=2,
        )

    def _identity(self) -> str:
        return json.dumps(
            {
                "accountId": self.account,
                "architecture": "x86_64",
                "availabilityZone": f"{self.region}a",
                "instanceId": self.instance_id,
                "instanceType": INSTANCE_TYPE,
                "region": self.region,
                "version": "2017-09-30",
            },
            indent=2,
        )


class Handler(BaseHTTPRequestHandler):
    metadata: ClassVar[Metadata]

    def do_PUT(self) -> None:
        if self.path != "/latest/api/token":
            self._answer(403, "Forbidden")
            return
        if self.headers.get("X-Forwarded-For"):
            self._answer(403, "Forbidden")  # IMDS refuses token requests that went through a proxy
            return
        ttl = self.headers.get(TTL_HEADER, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= MAX_TTL_S:
            self._answer(400, "Bad Request")
            return
        self._answer(200, self.metadata.issue(int(ttl)))

    def do_GET(self) -> None:
        if not self.metadata.valid(self.headers.get(TOKEN_HEADER)):
            self._answer(401, "Unauthorized")
            return
        body = self.metadata.answer(self.path.removeprefix("/latest/"))
        self._answer(404, "Not Found") if body is None else self._answer(200, body)

    def _answer(self, code: int, text: str) -> None:
        serving.answer(self, code, text.encode(), "text/plain")

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("imds: " + (format % args) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rehearsal.imds", description=__doc__)
    p.add_argument("--listen", required=True, help="HOST:PORT")
    p.add_argument("--role", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--account", required=True)
    p.add_argument("--instance-id", default=INSTANCE_ID)
    p.add_argument("--netns", help="listen in this network namespace (a second host's), not the current one")
    args = p.parse_args(argv)
    Handler.metadata = Metadata(
        role=args.role, region=args.region, account=args.account, instance_id=args.instance_id
    )
    if args.netns:
        setns(args.netns)  # before any socket exists: the server listens in the host's namespace
    return serving.serve_forever(args.listen, Handler)


if __name__ == "__main__":
    sys.exit(main())

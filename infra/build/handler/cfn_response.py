"""The answer to CloudFormation: one JSON body PUT to the request's presigned ResponseURL (stdlib only).

The body carries exactly the fields of the CloudFormation User Guide's "Custom resource response objects"
(crpg-ref-responses): Status SUCCESS|FAILED, Reason (required with FAILED), PhysicalResourceId (non-empty, at
most 1 KB), StackId, RequestId and LogicalResourceId copied verbatim from the request, NoEcho, Data; the
whole body at most 4,096 bytes. As cfn-response does, the PUT has an empty Content-Type (the URL is signed
without one). The URL is a bearer credential: it is never logged, and no message here ever contains it.
Only an https:// URL is answered (CloudFormation's are presigned S3 https URLs: the Lambda Developer Guide's
"Using Lambda with CloudFormation" event): a forged request naming plain http or another scheme gets nothing.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID_BYTES = 1024
PUT_TIMEOUT_S = 30
SUCCESS, FAILED = "SUCCESS", "FAILED"


class ResponseNotDelivered(RuntimeError):
    """The presigned URL refused or did not take the answer (the message never names the URL)."""


def body(
    event: Mapping[str, Any],
    status: str,
    physical_id: str,
    *,
    reason: str = "",
    data: Mapping[str, str] | None = None,
) -> bytes:
    """The response document for `event`; a Reason too long for the size limit is shortened, never the
    Data (a SUCCESS whose Data does not fit is refused: CloudFormation would reject it anyway)."""
    if status not in (SUCCESS, FAILED):
        raise ValueError(f"Status must be {SUCCESS} or {FAILED}, not {status!r}")
    if status == FAILED and not reason:
        raise ValueError("a FAILED response needs a Reason")
    if not physical_id or len(physical_id.encode()) > MAX_PHYSICAL_ID_BYTES:
        raise ValueError("PhysicalResourceId must be 1 to 1,024 bytes")
    document: dict[str, Any] = {
        "Status": status,
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }
    if reason:
        document["Reason"] = reason
    encoded = json.dumps(document).encode()
    excess = len(encoded) - MAX_BODY_BYTES
    if excess > 0:
        if len(reason.encode()) <= excess + 3:
            raise ValueError(f"the response is {len(encoded)} bytes, over {MAX_BODY_BYTES}")
        document["Reason"] = (
            reason.encode()[: len(reason.encode()) - excess - 3].decode(errors="ignore") + "..."
        )
        encoded = json.dumps(document).encode()
    return encoded


def check_url(response_url: str) -> None:
    """Raises ResponseNotDelivered unless the URL is https:// (the message never quotes it)."""
    if not response_url.startswith("https://"):
        raise ResponseNotDelivered("the request's ResponseURL is not an https:// URL: not answered")


def send(response_url: str, payload: bytes, *, context: ssl.SSLContext | None = None) -> int:
    """PUT the body over https (certificate verified: `context`, default the system's); back: the HTTP status
    (2xx). Raises ResponseNotDelivered otherwise, whatever went wrong (an http.client.InvalidURL, too), with a
    message that names only the failure's type, never the URL."""
    check_url(response_url)
    try:
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            response_url,
            data=payload,
            method="PUT",
            headers={"Content-Type": "", "Content-Length": str(len(payload))},
        )
        with urllib.request.urlopen(request, timeout=PUT_TIMEOUT_S, context=context) as answer:  # noqa: S310
            status: int = answer.status
    except urllib.error.HTTPError as error:
        raise ResponseNotDelivered(f"the response URL answered HTTP {error.code}") from None
    except Exception as error:  # any message may quote the URL: only the type is kept
        raise ResponseNotDelivered(f"the response could not be sent ({type(error).__name__})") from None
    return status

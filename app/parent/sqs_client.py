"""The relay's SQS calls over AWS's JSON protocol, shaped like boto3's client (same names, same dicts).

Why not boto3 here: its generic machinery cost ~2 ms of CPU per call on our bench, three calls per batch
of ten, most of the relay's CPU. This sends the requests SQS's JSON protocol defines (`X-Amz-Target:
AmazonSQS.<Action>`, the same member names boto3 uses), signed with SigV4 (`app.shared.sigv4`, checked
against botocore's signer), on kept-alive connections, and raises botocore's own `ClientError` /
`EndpointConnectionError`, so callers handle failures exactly as before. Credentials come from boto3's
chain (IMDS on the instance) on every call, so rotation is picked up as before. Bodies are not logged.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore
from botocore.exceptions import ClientError, EndpointConnectionError

from app.shared.protocol import Credentials
from app.shared.sigv4 import Signer

CONNECT_TIMEOUT_S = 5.0
READ_MARGIN_S = 10.0  # on top of a long poll's WaitTimeSeconds
CONTENT_TYPE = "application/x-amz-json-1.0"
BOTOCORE_CA_BUNDLE = Path(botocore.__file__).with_name("cacert.pem")
ENV_ENDPOINTS = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")  # honoured as boto3 honours them


class LeanSqs:
    """Thread-safe; `receive_message(**params)` and the batch calls return what boto3 returns."""

    def __init__(
        self, *, region: str, credentials: Callable[[], Credentials], endpoint_url: str | None = None
    ):
        url = endpoint_url or next((os.environ[n] for n in ENV_ENDPOINTS if os.environ.get(n)), None)
        parts = urlsplit(url or f"https://sqs.{region}.amazonaws.com")
        self._https = parts.scheme == "https"
        self._host = parts.netloc
        self._region = region
        self._credentials = credentials
        self._signer = Signer("sqs")
        self._context = ssl.create_default_context(
            cafile=os.environ.get("AWS_CA_BUNDLE") or str(BOTOCORE_CA_BUNDLE)
        )
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def receive_message(self, **params: Any) -> dict[str, Any]:
        return self._call("ReceiveMessage", params, float(params.get("WaitTimeSeconds", 0)))

    def send_message_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("SendMessageBatch", params)

    def delete_message_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("DeleteMessageBatch", params)

    def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        return self._call("ChangeMessageVisibilityBatch", params)

    def get_queue_attributes(self, **params: Any) -> dict[str, Any]:
        return self._call("GetQueueAttributes", params)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _call(self, action: str, params: dict[str, Any], wait_s: float = 0.0) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":"), default=_bytes_as_base64).encode()
        headers = self._signer.headers(
            self._credentials(), region=self._region, amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
            host=self._host, body=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"},
        )  # fmt: skip
        status, data = self._exchange(headers, body, wait_s + READ_MARGIN_S)
        answer = json.loads(data) if data else {}
        if status != 200:
            code = str(answer.get("__type") or f"HTTP{status}").rsplit("#", 1)[-1]
            error = {"Code": code, "Message": str(answer.get("message") or answer.get("Message") or "")}
            response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
            raise ClientError(response, action)
        return dict(answer)

    def _exchange(self, headers: dict[str, str], body: bytes, timeout_s: float) -> tuple[int, bytes]:
        for attempt in (1, 2):  # a connection the server closed while idle gets one retry on a fresh one
            connection, reused = self._take()
            try:
                connection.timeout = timeout_s
                if connection.sock is not None:
                    connection.sock.settimeout(timeout_s)
                connection.putrequest("POST", "/", skip_host=True, skip_accept_encoding=True)
                for name, value in headers.items():
                    connection.putheader(name, value)
                connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                data = response.read()
            except TimeoutError as error:
                connection.close()
                raise EndpointConnectionError(endpoint_url=self._host, error=error) from error
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                if reused and attempt == 1:
                    continue
                raise EndpointConnectionError(endpoint_url=self._host, error=error) from error
            if response.will_close:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)
            return response.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._https:
            return http.client.HTTPSConnection(
                self._host, timeout=CONNECT_TIMEOUT_S, context=self._context
            ), False
        return http.client.HTTPConnection(self._host, timeout=CONNECT_TIMEOUT_S), False


def _bytes_as_base64(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

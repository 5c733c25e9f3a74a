"""The enclave's one AWS call: KMS Decrypt with a Recipient, on kept-alive TLS straight down the egress link.

Why not boto3 here: its generic machinery (validation, serialisation, event hooks, endpoint rules) and
the CONNECT-proxy hop it needed cost ~2 ms of CPU per call on our bench, more than the RSA unwrap. This
sends exactly the request KMS's JSON 1.1 protocol defines for Decrypt (`X-Amz-Target:
TrentService.Decrypt`), signed with SigV4, on a pool of HTTP/1.1 connections that stay open. TLS is end
to end with KMS: each connection is a TLS session over the egress link (vsock 3:8000 → the parent's
vsock-proxy → kms.<region>.amazonaws.com:443) whose certificate must match the KMS host name under the
CA bundle ($AWS_CA_BUNDLE, else the one botocore ships). Only KMS host names are ever dialled.
Nothing here logs; error messages carry KMS's own wording, which never echoes a ciphertext.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import botocore

from app.enclave.http11 import Http11Connection
from app.enclave.sigv4 import Signer
from app.shared import deployment, transport
from app.shared.protocol import Credentials

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 8.0
CONTENT_TYPE = "application/x-amz-json-1.1"
DECRYPT_TARGET = "TrentService.Decrypt"
KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
BOTOCORE_CA_BUNDLE = Path(botocore.__file__).with_name("cacert.pem")


class KmsError(Exception):
    """KMS answered with an error; `code` is its `__type` without namespace (AccessDeniedException, ...)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"KMS {code}: {message}".strip())
        self.code = code
        self.message = message
        self.status = status


class KmsUnreachable(Exception):
    """No answer from KMS over the egress link (connect, TLS, timeout, a broken or odd response)."""


@dataclass(frozen=True)
class Decrypted:
    """KMS's answer to an attested Decrypt: the wrapped plaintext, and `key_arn`, the response's KeyId (the
    ARN of the key KMS used: what a signed result names, since the request's KeyId is the caller's word)."""

    ciphertext_for_recipient: bytes = field(repr=False)
    key_arn: str


@dataclass(frozen=True)
class Recipient:
    """The Recipient parameter as JSON text, encoded once per key pair rather than on every call."""

    json_text: str

    @classmethod
    def for_document(cls, attestation_document: bytes) -> Recipient:
        value = {
            "AttestationDocument": base64.b64encode(attestation_document).decode("ascii"),
            "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
        }
        return cls(json.dumps(value, separators=(",", ":")))


def tls_context() -> ssl.SSLContext:
    """Certificate and host-name checks on, TLS 1.2+, the bundle boto3 would use."""
    context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or str(BOTOCORE_CA_BUNDLE))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _opener(
    egress: transport.Endpoint, context: ssl.SSLContext, server_name: str
) -> Callable[[float], ssl.SSLSocket]:
    """Opens a TLS session to KMS over the egress link (no DNS, no proxy), checking `server_name`."""

    def open_tls(time_left_s: float) -> ssl.SSLSocket:
        try:
            raw = transport.connect(egress, min(CONNECT_TIMEOUT_S, time_left_s))
        except transport.TransportError as error:
            raise KmsUnreachable(str(error)) from error
        try:
            tls = context.wrap_socket(raw, server_hostname=server_name)
        except OSError:
            raw.close()
            raise
        return tls

    return open_tls


class KmsClient:
    """Thread-safe. At most `max_connections` open at once (idle or busy), reused last-in first-out.
    Every wait of one call comes out of `call_deadline_s`: each socket operation waits at most the time
    left, so a silent or stuck peer ends the call in time; one that trickles its answer a few bytes at a
    time could stretch a read past it (KMS does not)."""

    def __init__(
        self, egress_url: str, *, max_connections: int, endpoint_url: str | None = None,
        context: ssl.SSLContext | None = None, call_deadline_s: float = deployment.KMS_CALL_DEADLINE_S,
    ) -> None:  # fmt: skip
        self._egress = transport.parse_url(egress_url)
        self._fixed_host = urlsplit(endpoint_url).netloc if endpoint_url else None
        self._context = context or tls_context()
        self._signer = Signer("kms")
        self._idle: dict[str, list[Http11Connection]] = {}
        self._open = 0
        self._max = max_connections
        self._slots = threading.Condition()
        self._call_deadline_s = call_deadline_s

    @property
    def open_connections(self) -> int:
        with self._slots:
            return self._open

    def host_for(self, region: str) -> str:
        if self._fixed_host is not None:
            return self._fixed_host
        if not REGION_PATTERN.fullmatch(region):
            raise KmsUnreachable(f"not an AWS region name: {region[:40]!r}")
        return f"kms.{region}.amazonaws.com"

    def decrypt(
        self, *, region: str, credentials: Credentials, key_id: str, ciphertext: bytes,
        encryption_context: Mapping[str, str], recipient: Recipient, signed_at: float | None = None,
    ) -> Decrypted:  # fmt: skip
        """CiphertextForRecipient and the KeyId KMS answered, or KmsError / KmsUnreachable. Decrypt is
        idempotent: a connection that went stale while idle is replaced and the call sent once more,
        within the same deadline.
        `signed_at` (seconds since the epoch, default now) is the request's X-Amz-Date."""
        deadline = time.monotonic() + self._call_deadline_s
        host = self.host_for(region)
        body = (
            f'{{"KeyId":{json.dumps(key_id)},'
            f'"CiphertextBlob":"{base64.b64encode(ciphertext).decode("ascii")}",'
            f'"EncryptionContext":{json.dumps(dict(encryption_context), separators=(",", ":"))},'
            f'"Recipient":{recipient.json_text}}}'
        ).encode()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed_at))
        headers = self._signer.headers(
            credentials, region=region, amz_date=amz_date, host=host, body=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": DECRYPT_TARGET},
        )  # fmt: skip
        status, data = self._exchange(host, headers, body, deadline)
        return _ciphertext_for_recipient(status, data)

    def _exchange(
        self, host: str, headers: Mapping[str, str], body: bytes, deadline: float
    ) -> tuple[int, bytes]:
        head = "".join(
            (
                "POST / HTTP/1.1\r\n",
                *(f"{k}: {v}\r\n" for k, v in headers.items()),
                f"Content-Length: {len(body)}\r\n\r\n",
            )
        ).encode()
        connection = self._take(host, deadline)
        try:
            try:
                status, data, close = connection.exchange(head, body, self._time_left(deadline))
            except TimeoutError:
                raise
            except OSError:  # reset, EOF, broken pipe, no status line
                if not connection.used:
                    raise
                connection.close()  # the server closed it while idle: once more on a fresh one
                status, data, close = connection.exchange(head, body, self._time_left(deadline))
        except OSError as error:
            connection.close()
            raise KmsUnreachable(f"{type(error).__name__}: {error}"[:200]) from error
        except BaseException:
            connection.close()  # never back into the pool with an answer half read
            raise
        else:
            if close:
                connection.close()
            return status, data
        finally:
            self._give_back(host, connection)

    def _time_left(self, deadline: float) -> float:
        """Seconds left before `deadline`, capped at one read's timeout; none left is KmsUnreachable."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise KmsUnreachable(f"no answer from KMS within {self._call_deadline_s:g} s")
        return min(left, READ_TIMEOUT_S)

    def _take(self, host: str, deadline: float) -> Http11Connection:
        with self._slots:
            while True:
                idle = self._idle.get(host)
                if idle:
                    return idle.pop()
                if self._open < self._max:
                    self._open += 1
                    server_name = host.rsplit(":", 1)[0] if ":" in host else host
                    return Http11Connection(_opener(self._egress, self._context, server_name))
                other = next((conns for conns in self._idle.values() if conns), None)
                if other is not None:  # a slot held by another region's idle connection
                    other.pop().close()
                    self._open -= 1
                    continue
                wait_s = min(CONNECT_TIMEOUT_S, deadline - time.monotonic())
                if wait_s <= 0 or not self._slots.wait(wait_s):
                    raise KmsUnreachable(f"all {self._max} KMS connections busy")

    def _give_back(self, host: str, connection: Http11Connection) -> None:
        with self._slots:
            if connection.sock is None:  # closed: its slot is free again
                self._open -= 1
            else:
                self._idle.setdefault(host, []).append(connection)
            self._slots.notify()

    def close(self) -> None:
        with self._slots:
            for conns in self._idle.values():
                for connection in conns:
                    connection.close()
                    self._open -= 1
            self._idle.clear()


def _ciphertext_for_recipient(status: int, data: bytes) -> Decrypted:
    try:
        answer = json.loads(data) if data else {}
    except ValueError as error:
        raise KmsUnreachable(f"KMS answered HTTP {status} with a body that is not JSON") from error
    if not isinstance(answer, dict):
        raise KmsUnreachable(f"KMS answered HTTP {status} with a body that is not a JSON object")
    if status != 200:
        code = str(answer.get("__type") or answer.get("code") or f"HTTP{status}").rsplit("#", 1)[-1]
        message = str(answer.get("message") or answer.get("Message") or "")
        raise KmsError(code, message[:500], status)
    wrapped = answer.get("CiphertextForRecipient")
    if not isinstance(wrapped, str) or not wrapped:
        # Real KMS never returns Plaintext to an attested call; if it did, we would not use it.
        raise KmsError("MissingCiphertextForRecipient", "KMS answered without CiphertextForRecipient", status)
    key_arn = answer.get("KeyId")
    if not isinstance(key_arn, str) or not key_arn.startswith("arn:"):
        # KMS's Decrypt response always names the key it used (KeyId, an ARN); without it no result
        # could say which deployment's key vouched for the ciphertext.
        raise KmsError("MissingKeyId", "KMS answered without the KeyId of the key it used", status)
    try:
        return Decrypted(base64.b64decode(wrapped, validate=True), key_arn)
    except ValueError as error:
        raise KmsUnreachable("KMS's CiphertextForRecipient is not base64") from error

"""Versioned request/response messages for the parent ↔ enclave link (inside frames, JSON encoded).

Request:  {"v": 1, "id": <int>, "op": "ping" | "decrypt" | "attest", "body": {...}}
Response: {"v": 1, "id": <int>, "ok": true, "body": {...}}
       or {"v": 1, "id": <int>, "ok": false, "error": {"code": ..., "message": ..., "retryable": bool}}
A decrypt answer, ok or not, may carry the enclave's signed `proof` (app/shared/result_proof.py).
Ids let many requests share one connection; answers may come back in any order. Pure: no I/O here.
Secrets (credentials) travel in request bodies but never appear in a repr, a log or an error message.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.shared import limits

PROTOCOL_VERSION = 1
MAX_REQUEST_ID = 2**63 - 1
MAX_TEXT_FIELD_CHARS = 2048  # e.g. KMS KeyId: 1-2048 characters (key id, key ARN, alias name or ARN)
MAX_MESSAGE_ID_CHARS = 128  # SQS message ids are 36-character UUIDs
# The enclave closes a connection that has had nothing in flight for this long; the parent's client
# retires an idle connection itself after half of it, so it never sends on one the server is closing.
SERVER_IDLE_TIMEOUT_S = 60.0
CLIENT_IDLE_RETIRE_S = SERVER_IDLE_TIMEOUT_S / 2


class Op(StrEnum):
    PING = "ping"
    DECRYPT = "decrypt"
    ATTEST = "attest"


class ErrorCode(StrEnum):
    """Every failure has a code; `RETRYABLE` says whether trying again later can help."""

    BAD_REQUEST = "bad_request"
    UNSUPPORTED_VERSION = "unsupported_version"
    MALFORMED_MESSAGE = "malformed_message"  # an SQS body the relay cannot read
    INVALID_CIPHERTEXT = "invalid_ciphertext"  # includes a wrong encryption context
    WRONG_KEY = "wrong_key"  # KMS IncorrectKeyException: encrypted under a key other than the deployment's
    ACCESS_DENIED = "access_denied"  # the key policy refused this enclave's attestation
    KEY_UNUSABLE = "key_unusable"  # key disabled, pending deletion, not found
    NOT_A_CARD = "not_a_card"
    KMS_THROTTLED = "kms_throttled"
    KMS_UNAVAILABLE = "kms_unavailable"
    CREDENTIALS_EXPIRED = "credentials_expired"
    CLOCK_SKEW = (
        "clock_skew"  # KMS refused the signing time (SigV4's 5-minute window); see app/enclave/clock.py
    )
    ENCLAVE_UNAVAILABLE = "enclave_unavailable"
    ENCLAVE_TIMEOUT = "enclave_timeout"
    BUSY = "busy"
    INTERNAL = "internal"


RETRYABLE = frozenset(
    {
        ErrorCode.KMS_THROTTLED,
        ErrorCode.KMS_UNAVAILABLE,
        ErrorCode.CREDENTIALS_EXPIRED,
        ErrorCode.CLOCK_SKEW,
        ErrorCode.ENCLAVE_UNAVAILABLE,
        ErrorCode.ENCLAVE_TIMEOUT,
        ErrorCode.BUSY,
        ErrorCode.INTERNAL,
    }
)


class ProtocolError(Exception):
    """A message that breaks the protocol; carries the code to answer with and the request id if known."""

    def __init__(self, code: ErrorCode, message: str, request_id: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class ErrorInfo:
    code: ErrorCode
    message: str
    proof: Mapping[str, Any] | None = field(default=None, repr=False)  # the enclave's signed refusal

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


@dataclass(frozen=True)
class Request:
    id: int
    op: Op
    body: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Response:
    id: int
    body: Mapping[str, Any] | None = None
    error: ErrorInfo | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Credentials:
    """AWS credentials the relay lends the enclave (which has no IMDS of its own)."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DecryptRequest:
    ciphertext: bytes = field(repr=False)
    encryption_context: Mapping[str, str]
    region: str
    credentials: Credentials = field(repr=False)
    key_id: str  # the deployment's key (its full ARN), passed to Decrypt as KeyId
    message_id: str | None = None  # the SQS message the relay asks for; the enclave signs it into its answer


@dataclass(frozen=True)
class DecryptResult:
    last4: str
    kms_ms: float
    enclave_ms: float
    proof: Mapping[str, Any] | None = field(default=None, repr=False)


def _load(payload: bytes, min_id: int = 1) -> dict[str, Any]:
    """Parse and check the envelope. Responses may carry id 0: an error about the connection itself."""
    try:
        message = limits.loads(payload)
    except limits.JsonRefused as error:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"frame refused: {error}") from error
    if not isinstance(message, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "message is not a JSON object")
    request_id = message.get("id")
    if (
        not isinstance(request_id, int)
        or isinstance(request_id, bool)
        or not min_id <= request_id <= MAX_REQUEST_ID
    ):
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"id must be an integer >= {min_id}, got {limits.echo(request_id)}"
        )
    version = message.get("v")
    if type(version) is not int or version != PROTOCOL_VERSION:  # true and 1.0 equal 1 in Python
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version {limits.echo(version)} not supported (expected {PROTOCOL_VERSION})",
            request_id,
        )
    return message


def _dump(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


def encode_request(request: Request) -> bytes:
    return _dump({"v": PROTOCOL_VERSION, "id": request.id, "op": request.op.value, "body": request.body})


def decode_request(payload: bytes) -> Request:
    message = _load(payload)
    request_id: int = message["id"]
    try:
        op = Op(str(message.get("op")))
    except ValueError as error:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST, f"unknown op {limits.echo(message.get('op'))}", request_id
        ) from error
    body = message.get("body", {})
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "body is not a JSON object", request_id)
    return Request(request_id, op, body)


def encode_response(response: Response) -> bytes:
    message: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": response.id, "ok": response.ok}
    if response.error is None:
        message["body"] = response.body or {}
    else:
        message["error"] = {
            "code": response.error.code.value,
            "message": limits.clip(response.error.message),
            "retryable": response.error.retryable,
        }
        if response.error.proof is not None:
            message["error"]["proof"] = response.error.proof
    return _dump(message)


def decode_response(payload: bytes) -> Response:
    message = _load(payload, min_id=0)
    if message.get("ok") is True and isinstance(message.get("body"), dict):
        return Response(message["id"], body=message["body"])
    error = message.get("error")
    if message.get("ok") is False and isinstance(error, dict):
        try:
            code = ErrorCode(str(error.get("code")))
        except ValueError:
            code = ErrorCode.INTERNAL
        proof = error.get("proof")
        return Response(
            message["id"],
            error=ErrorInfo(
                code, limits.clip(str(error.get("message", ""))), proof if isinstance(proof, dict) else None
            ),
        )
    raise ProtocolError(ErrorCode.BAD_REQUEST, "response has neither a body nor an error", message["id"])


def error_response(
    request_id: int, code: ErrorCode, message: str, proof: Mapping[str, Any] | None = None
) -> Response:
    return Response(request_id, error=ErrorInfo(code, message, proof))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as error:  # binascii.Error, and ValueError for non-ASCII text
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} is not valid base64") from error


def decrypt_body(request: DecryptRequest) -> dict[str, Any]:
    creds = request.credentials
    return {
        "ciphertext": _b64(request.ciphertext),
        "encryption_context": dict(request.encryption_context),
        "region": request.region,
        "key_id": request.key_id,
        "message_id": request.message_id,
        "credentials": {
            "access_key_id": creds.access_key_id,
            "secret_access_key": creds.secret_access_key,
            "session_token": creds.session_token,
        },
    }


def _text(value: Any, name: str, max_chars: int = MAX_TEXT_FIELD_CHARS) -> str:
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"{name} must be a string of 1-{max_chars} characters")
    return value


def parse_decrypt(body: Mapping[str, Any]) -> DecryptRequest:
    context = body.get("encryption_context", {})
    if not isinstance(context, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in context.items()
    ):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "encryption_context must be an object of strings")
    creds = body.get("credentials")
    if not isinstance(creds, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "credentials missing")
    token = creds.get("session_token")
    message_id = body.get("message_id")
    return DecryptRequest(
        ciphertext=_unb64(body.get("ciphertext"), "ciphertext"),
        encryption_context=context,
        region=_text(body.get("region"), "region"),
        credentials=Credentials(
            access_key_id=_text(creds.get("access_key_id"), "credentials.access_key_id"),
            secret_access_key=_text(creds.get("secret_access_key"), "credentials.secret_access_key"),
            session_token=token if isinstance(token, str) and token else None,
        ),
        key_id=_text(body.get("key_id"), "key_id"),
        message_id=None if message_id is None else _text(message_id, "message_id", MAX_MESSAGE_ID_CHARS),
    )


def decrypt_result_body(result: DecryptResult) -> dict[str, Any]:
    body = {"last4": result.last4, "kms_ms": result.kms_ms, "enclave_ms": result.enclave_ms}
    return body if result.proof is None else {**body, "proof": result.proof}


def parse_decrypt_result(body: Mapping[str, Any]) -> DecryptResult:
    last4 = body.get("last4")
    if not isinstance(last4, str) or len(last4) != 4 or not last4.isdigit():
        raise ProtocolError(ErrorCode.BAD_REQUEST, "last4 must be four digits")
    proof = body.get("proof")
    try:
        return DecryptResult(
            last4,
            float(body.get("kms_ms", 0.0)),
            float(body.get("enclave_ms", 0.0)),
            proof if isinstance(proof, dict) else None,
        )
    except (TypeError, ValueError) as error:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "kms_ms and enclave_ms must be numbers") from error


def attest_body(nonce: bytes) -> dict[str, Any]:
    return {"nonce": _b64(nonce)}


def parse_attest(body: Mapping[str, Any]) -> bytes:
    nonce = _unb64(body.get("nonce"), "nonce")
    if not 16 <= len(nonce) <= 512:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"nonce must be 16-512 bytes, got {len(nonce)}")
    return nonce


def attest_result_body(document: bytes) -> dict[str, Any]:
    return {"document": _b64(document)}


def parse_attest_result(body: Mapping[str, Any]) -> bytes:
    return _unb64(body.get("document"), "document")

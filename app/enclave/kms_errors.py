"""Maps what boto3 raises on a KMS call to our error codes; decides retry vs dead-letter.

Nothing here sees a plaintext. Messages keep KMS's own wording (it never echoes a ciphertext).
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)

from app.shared.protocol import ErrorCode

_BY_KMS_CODE = {
    "InvalidCiphertextException": ErrorCode.INVALID_CIPHERTEXT,  # also: wrong encryption context
    "IncorrectKeyException": ErrorCode.WRONG_KEY,  # the ciphertext is not under the KeyId we named
    "AccessDeniedException": ErrorCode.ACCESS_DENIED,
    "ValidationException": ErrorCode.BAD_REQUEST,
    "InvalidGrantTokenException": ErrorCode.BAD_REQUEST,
    "NotFoundException": ErrorCode.KEY_UNUSABLE,
    "DisabledException": ErrorCode.KEY_UNUSABLE,
    "KMSInvalidStateException": ErrorCode.KEY_UNUSABLE,
    "InvalidKeyUsageException": ErrorCode.KEY_UNUSABLE,
    "ThrottlingException": ErrorCode.KMS_THROTTLED,
    "LimitExceededException": ErrorCode.KMS_THROTTLED,
    "RequestLimitExceeded": ErrorCode.KMS_THROTTLED,
    "ExpiredTokenException": ErrorCode.CREDENTIALS_EXPIRED,
    "ExpiredToken": ErrorCode.CREDENTIALS_EXPIRED,
    "UnrecognizedClientException": ErrorCode.CREDENTIALS_EXPIRED,
    "InvalidSignatureException": ErrorCode.CREDENTIALS_EXPIRED,
    "KMSInternalException": ErrorCode.KMS_UNAVAILABLE,
    "DependencyTimeoutException": ErrorCode.KMS_UNAVAILABLE,
    "KeyUnavailableException": ErrorCode.KMS_UNAVAILABLE,
}

_TRANSPORT_FAILURES = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ProxyConnectionError,
    ConnectionClosedError,
    SSLError,
)


def classify(error: Exception) -> tuple[ErrorCode, str]:
    """(code, message) for a failed KMS call; unknown failures are INTERNAL, which is retried."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        kms_code = str(details.get("Code", "Unknown"))
        message = f"KMS {kms_code}: {details.get('Message', '')}".strip()
        return _BY_KMS_CODE.get(kms_code, ErrorCode.INTERNAL), message
    if isinstance(error, _TRANSPORT_FAILURES):
        return ErrorCode.KMS_UNAVAILABLE, f"KMS unreachable through the egress path: {type(error).__name__}"
    if isinstance(error, NoCredentialsError):
        return ErrorCode.CREDENTIALS_EXPIRED, "no credentials in the request"
    if isinstance(error, BotoCoreError):
        return ErrorCode.KMS_UNAVAILABLE, f"KMS call failed: {type(error).__name__}"
    return ErrorCode.INTERNAL, type(error).__name__

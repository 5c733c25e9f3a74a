"""Maps what the enclave's KMS client raises to our error codes; decides retry vs dead-letter.

Nothing here sees a plaintext. Messages keep KMS's own wording (it never echoes a ciphertext).
"""

from __future__ import annotations

from app.enclave.kms_client import KmsError, KmsUnreachable
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


def classify(error: Exception) -> tuple[ErrorCode, str]:
    """(code, message) for a failed KMS call; unknown failures are INTERNAL, which is retried."""
    if isinstance(error, KmsError):
        return _BY_KMS_CODE.get(error.code, ErrorCode.INTERNAL), str(error)
    if isinstance(error, KmsUnreachable):
        return ErrorCode.KMS_UNAVAILABLE, f"KMS unreachable through the egress path: {error}"
    return ErrorCode.INTERNAL, type(error).__name__

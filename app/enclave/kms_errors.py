"""Maps what the enclave's KMS client raises to our error codes; decides retry vs dead-letter.

SigV4's time refusals are InvalidSignatureException with "Signature expired: <signed> is now earlier than
<now - 5 min> ..." or "Signature not yet current: <signed> is still later than <now + 5 min> ..." (KMS's own
wording, e.g. aws/aws-sdk-js#2340, serverless/enterprise#11): those are `clock_skew`; any other
InvalidSignatureException (a wrong secret) stays `credentials_expired`. A TLS certificate that the enclave
finds not yet valid or expired (OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID 9 / X509_V_ERR_CERT_HAS_EXPIRED 10)
is judged by the enclave's own clock, which the NSM's time does not correct: also `clock_skew`, not
`kms_unavailable`.

Nothing here sees a plaintext. Messages keep KMS's own wording (it never echoes a ciphertext).
"""

from __future__ import annotations

import ssl

from app.enclave.kms_client import KmsError, KmsUnreachable
from app.shared.protocol import ErrorCode

INVALID_SIGNATURE = "InvalidSignatureException"
TIME_REFUSALS = ("Signature expired", "Signature not yet current")
CERTIFICATE_TIME_ERRORS = {9: "not yet valid", 10: "expired"}  # OpenSSL X509_V_ERR_* codes

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
        if error.code == INVALID_SIGNATURE and error.message.startswith(TIME_REFUSALS):
            return ErrorCode.CLOCK_SKEW, str(error)
        return _BY_KMS_CODE.get(error.code, ErrorCode.INTERNAL), str(error)
    if isinstance(error, KmsUnreachable):
        cause = error.__cause__
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_code in CERTIFICATE_TIME_ERRORS:
            return ErrorCode.CLOCK_SKEW, (
                f"KMS's TLS certificate is {CERTIFICATE_TIME_ERRORS[cause.verify_code]} by the enclave's own "
                f"clock, which judges certificates (the NSM's time corrects only the signing time): "
                f"{cause.verify_message}"
            )
        return ErrorCode.KMS_UNAVAILABLE, f"KMS unreachable through the egress path: {error}"
    return ErrorCode.INTERNAL, type(error).__name__

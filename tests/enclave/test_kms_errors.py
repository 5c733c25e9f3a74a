"""What each KMS refusal becomes: SigV4's time refusals are `clock_skew`, a bad signature or token is not."""

from __future__ import annotations

import pytest

from app.enclave.kms_client import KmsError
from app.enclave.kms_errors import classify
from app.shared import protocol
from app.shared.protocol import ErrorCode

# KMS's wording, as quoted in aws/aws-sdk-js#2340 and serverless/enterprise#11.
EXPIRED = (
    "Signature expired: 20181105T215603Z is now earlier than 20181105T221104Z (20181105T221604Z - 5 min.)"
)
NOT_YET = (
    "Signature not yet current: 20181120T211543Z is still later than 20181120T211529Z "
    "(20181120T211029Z + 5 min.)"
)
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)


@pytest.mark.parametrize("message", [EXPIRED, NOT_YET])
def test_a_signing_time_refusal_is_clock_skew_and_keeps_kms_words(message: str) -> None:
    code, text = classify(KmsError("InvalidSignatureException", message, 400))
    assert code is ErrorCode.CLOCK_SKEW
    assert text == f"KMS InvalidSignatureException: {message}"
    assert code in protocol.RETRYABLE  # the next attestation document measures the clock again


@pytest.mark.parametrize(
    ("kms_code", "message"),
    [
        ("InvalidSignatureException", MISMATCH),
        ("ExpiredTokenException", "The security token included in the request is expired"),
        ("UnrecognizedClientException", "The security token included in the request is invalid."),
    ],
)
def test_other_signature_and_token_refusals_stay_credentials_expired(kms_code: str, message: str) -> None:
    assert classify(KmsError(kms_code, message, 400))[0] is ErrorCode.CREDENTIALS_EXPIRED

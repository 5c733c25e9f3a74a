"""Our SigV4 signer against botocore's (`botocore.auth.SigV4Auth`, the reference), byte for byte.

moto does not check signatures, so this is what stands between us and a KMS that refuses every call.
"""

from __future__ import annotations

import datetime

import pytest
from botocore import auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from app.enclave.kms_client import CONTENT_TYPE, DECRYPT_TARGET
from app.enclave.sigv4 import Signer
from app.shared.protocol import Credentials

WHEN = datetime.datetime(2026, 12, 1, 13, 14, 15, tzinfo=datetime.UTC)
AMZ_DATE = "20261201T131415Z"
HEADERS = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": DECRYPT_TARGET}


def _botocore_authorization(
    credentials: Credentials, region: str, host: str, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setattr(auth, "get_current_datetime", lambda: WHEN.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=f"https://{host}/", data=body, headers=dict(HEADERS))
    boto = BotoCredentials(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token
    )
    auth.SigV4Auth(boto, "kms", region).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzE-session-token/+="])
def test_the_authorization_header_is_botocores(token: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    body = b'{"CiphertextBlob":"AQID","EncryptionContext":{"app":"x"}}'
    host = "kms.eu-west-1.amazonaws.com"
    ours = Signer("kms").headers(
        credentials, region="eu-west-1", amz_date=AMZ_DATE, host=host, headers=HEADERS, body=body
    )
    assert ours["Authorization"] == _botocore_authorization(credentials, "eu-west-1", host, body, monkeypatch)
    assert ours.get("X-Amz-Security-Token") == token


@settings(max_examples=25, deadline=None)
@given(body=st.binary(max_size=2048), secret=st.text("abcXYZ019+/", min_size=1, max_size=40))
def test_any_body_and_secret_sign_as_botocore_signs_them(body: bytes, secret: str) -> None:
    credentials = Credentials("AKIDEXAMPLE", secret)
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = _botocore_authorization(credentials, "us-east-1", "localhost:4566", body, monkeypatch)
    ours = Signer("kms").headers(
        credentials, region="us-east-1", amz_date=AMZ_DATE, host="localhost:4566", headers=HEADERS, body=body
    )
    assert ours["Authorization"] == expected


def test_a_cached_signing_key_still_signs_a_new_day_afresh() -> None:
    signer = Signer("kms")
    credentials = Credentials("AKIDEXAMPLE", "secret")
    day_one = signer.headers(
        credentials, region="us-east-1", amz_date=AMZ_DATE, host="h", headers={}, body=b""
    )
    day_two = signer.headers(
        credentials, region="us-east-1", amz_date="20261202T131415Z", host="h", headers={}, body=b""
    )
    assert day_one["Authorization"] != day_two["Authorization"]
    assert "20261202/us-east-1/kms/aws4_request" in day_two["Authorization"]

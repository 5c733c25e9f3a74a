"""AWS Signature Version 4 for our one request shape: a POST of a JSON body to `/` (KMS, SQS JSON protocols).

Written from the published algorithm (docs.aws.amazon.com, "Create a signed AWS API request") and checked
byte for byte against botocore's own signer (`botocore.auth.SigV4Auth`) in tests/enclave/test_sigv4.py.
The derived signing key is cached per (secret, day, region, service): it changes once a day, so each call
costs two SHA-256 digests and one HMAC. Never logs or repeats a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping

from app.shared.protocol import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
_KEY_CACHE_SIZE = 8


class Signer:
    """Thread-safe; one per worker process."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._keys: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def headers(
        self, credentials: Credentials, *, region: str, amz_date: str, host: str,
        headers: Mapping[str, str], body: bytes,
    ) -> dict[str, str]:  # fmt: skip
        """`headers` plus Host, X-Amz-Date, X-Amz-Security-Token (if any) and Authorization, all signed."""
        signed = {k.lower(): v.strip() for k, v in headers.items()}
        signed |= {"host": host, "x-amz-date": amz_date}
        if credentials.session_token:
            signed["x-amz-security-token"] = credentials.session_token
        names = sorted(signed)
        canonical = "\n".join(
            (
                "POST", "/", "",
                "".join(f"{name}:{signed[name]}\n" for name in names),
                ";".join(names),
                hashlib.sha256(body).hexdigest(),
            )
        )  # fmt: skip
        day = amz_date[:8]
        scope = f"{day}/{region}/{self._service}/aws4_request"
        to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        key = self._signing_key(credentials.secret_access_key, day, region)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        authorization = (
            f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        out = {**headers, "Host": host, "X-Amz-Date": amz_date, "Authorization": authorization}
        if credentials.session_token:
            out["X-Amz-Security-Token"] = credentials.session_token
        return out

    def _signing_key(self, secret: str, day: str, region: str) -> bytes:
        cache_key = (secret, day, region)
        with self._lock:
            key = self._keys.get(cache_key)
            if key is not None:
                self._keys.move_to_end(cache_key)
                return key
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (region, self._service, "aws4_request"):
            key = _hmac(key, part)
        with self._lock:
            self._keys[cache_key] = key
            while len(self._keys) > _KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        return key


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()

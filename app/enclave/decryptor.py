"""Turns a ciphertext into its last four digits: attested KMS Decrypt, CMS unwrap, card checks.

This is the only place a full card number exists, as a local variable, for the time it takes to check
it. It is never logged, returned, or put in an exception message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.enclave import cms, kms_errors
from app.enclave.nsm import SecureModule
from app.enclave.recipient_keys import RecipientKeys
from app.shared import cards, deployment
from app.shared.protocol import Credentials, DecryptRequest, DecryptResult, ErrorCode

log = logging.getLogger(__name__)

KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
KMS_CONNECT_TIMEOUT_S = 3.0
KMS_READ_TIMEOUT_S = 8.0
KMS_MAX_POOL_CONNECTIONS = deployment.KMS_CONNECTIONS
CLIENT_CACHE_SIZE = 4  # instance-role credentials rotate about hourly; a few clients cover the overlap


class DecryptError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KmsSettings:
    """How the enclave reaches KMS: always through its local egress proxy."""

    proxy_url: str  # http://127.0.0.1:<port> of egress.ConnectProxy
    endpoint_url: str | None = None  # None = the regional endpoint (on Nitro); the emulator locally


class KmsClients:
    """One boto3 client per (region, credentials), reused so its TLS connections stay open."""

    def __init__(self, settings: KmsSettings) -> None:
        self._settings = settings
        self._session = boto3.session.Session()
        self._clients: OrderedDict[tuple[str, str, str | None], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._config = Config(
            proxies={"https": settings.proxy_url, "http": settings.proxy_url},
            connect_timeout=KMS_CONNECT_TIMEOUT_S,
            read_timeout=KMS_READ_TIMEOUT_S,
            max_pool_connections=KMS_MAX_POOL_CONNECTIONS,
            retries={"mode": "standard", "max_attempts": 2},
        )

    def get(self, region: str, credentials: Credentials) -> Any:
        key = (region, credentials.access_key_id, credentials.session_token)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._session.client(
                    "kms",
                    region_name=region,
                    endpoint_url=self._settings.endpoint_url,
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.secret_access_key,
                    aws_session_token=credentials.session_token,
                    config=self._config,
                )
                self._clients[key] = client
                while len(self._clients) > CLIENT_CACHE_SIZE:
                    self._clients.popitem(last=False)
            else:
                self._clients.move_to_end(key)
            return client


class Decryptor:
    def __init__(self, nsm: SecureModule, clients: KmsClients) -> None:
        self._keys = RecipientKeys(nsm)
        self._clients = clients

    def decrypt(self, request: DecryptRequest) -> DecryptResult:
        started = time.perf_counter()
        key = self._keys.current()
        client = self._clients.get(request.region, request.credentials)
        kms_started = time.perf_counter()
        try:
            answer = client.decrypt(
                KeyId=request.key_id,  # a ciphertext under any other key fails with IncorrectKeyException
                CiphertextBlob=request.ciphertext,
                EncryptionContext=dict(request.encryption_context),
                Recipient={
                    "AttestationDocument": key.attestation_document,
                    "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
                },
            )
        except (ClientError, BotoCoreError) as error:
            code, message = kms_errors.classify(error)
            if code in (ErrorCode.ACCESS_DENIED, ErrorCode.BAD_REQUEST):
                self._keys.discard(key)  # a stale or refused document must not be reused
            raise DecryptError(code, message) from error
        kms_ms = (time.perf_counter() - kms_started) * 1000
        last4 = self._last_four(answer, key.private_key)
        return DecryptResult(last4, round(kms_ms, 2), round((time.perf_counter() - started) * 1000, 2))

    @staticmethod
    def _last_four(answer: dict[str, Any], private_key: Any) -> str:
        wrapped = answer.get("CiphertextForRecipient")
        if not wrapped:
            # Real KMS never returns Plaintext to an attested call; if it did, we would not use it.
            raise DecryptError(ErrorCode.INTERNAL, "KMS answered without CiphertextForRecipient")
        try:
            plaintext = cms.unwrap_ciphertext_for_recipient(wrapped, private_key)
        except cms.CmsError as error:
            raise DecryptError(
                ErrorCode.INTERNAL, f"cannot unwrap KMS answer: {type(error).__name__}"
            ) from error
        try:
            return cards.last_four(plaintext.decode("ascii").strip())
        except (UnicodeDecodeError, cards.NotACardNumber) as error:
            reason = error.args[0] if isinstance(error, cards.NotACardNumber) else "not ASCII text"
            raise DecryptError(ErrorCode.NOT_A_CARD, f"plaintext is not a card number: {reason}") from None

"""Turns a ciphertext into its last four digits: attested KMS Decrypt, CMS unwrap, card checks.

This is the only place a full card number exists, as a local variable, for the time it takes to check
it. It is never logged, returned, or put in an exception message. Every answer, ok or refused, is
signed with the current key's result key (`app/shared/result_proof.py`): the card id (from the encryption
context KMS checked), the relay's message id, the status and the last four digits or the error code, the
KeyId of KMS's Decrypt response (absent when KMS never accepted the ciphertext), and SHA-256 of the
ciphertext and of the canonical encryption context.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from app.enclave import cms, kms_errors
from app.enclave.clock import EnclaveClock
from app.enclave.kms_client import KmsClient, KmsError, KmsUnreachable
from app.enclave.nsm import SecureModule
from app.enclave.recipient_keys import RecipientKeys
from app.shared import cards, result_proof
from app.shared.protocol import DecryptRequest, DecryptResult, ErrorCode
from app.shared.queue_messages import CONTEXT_CARD_ID_KEY

log = logging.getLogger(__name__)

# True whether or not this card is tried again: the document is gone, so whatever request comes next
# (this card's retry or another card) makes a new one first.
CLOCK_SKEW_NEXT = (
    "this document is discarded: the enclave's next request attests and measures its clock again"
)


class DecryptError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.proof: dict[str, object] | None = None  # set by Decryptor.decrypt: the signed refusal
        self.kms_key_arn: str | None = None  # the key KMS used, when KMS accepted the ciphertext


class Decryptor:
    """Signs each KMS call with `clock.now()`, the time its attestation documents vouch for."""

    def __init__(self, nsm: SecureModule, kms: KmsClient, *, clock: EnclaveClock | None = None) -> None:
        self.clock = clock or EnclaveClock()
        self._keys = RecipientKeys(nsm, clock=self.clock)
        self._kms = kms

    def prepare(self) -> None:
        """Make the first key pair and attestation document before any request needs them."""
        self._keys.prepare()

    def decrypt(self, request: DecryptRequest) -> DecryptResult:
        """The last four digits, signed; or DecryptError carrying the signed refusal."""
        try:
            result, key_arn = self._decrypt(request)
        except DecryptError as error:
            error.proof = self._sign(request, "rejected", None, error.code.value, error.kms_key_arn)
            raise
        return dataclasses.replace(result, proof=self._sign(request, "ok", result.last4, None, key_arn))

    def _sign(
        self, request: DecryptRequest, status: str, last4: str | None, error_code: str | None,
        kms_key_arn: str | None,
    ) -> dict[str, object]:  # fmt: skip
        card_id = request.encryption_context.get(CONTEXT_CARD_ID_KEY)
        fields = result_proof.SignedFields(
            card_id, request.message_id, status, last4, error_code, kms_key_arn,
            result_proof.sha256_hex(request.ciphertext),
            result_proof.context_sha256(request.encryption_context),
        )  # fmt: skip
        return self._keys.current().sign(fields)

    def _decrypt(self, request: DecryptRequest) -> tuple[DecryptResult, str]:
        started = time.perf_counter()
        key = self._keys.current()
        try:
            answer = self._kms.decrypt(
                region=request.region,
                credentials=request.credentials,
                key_id=request.key_id,  # a ciphertext under any other key fails with IncorrectKeyException
                ciphertext=request.ciphertext,
                encryption_context=request.encryption_context,
                recipient=key.recipient,
                signed_at=self.clock.now(),
            )
        except (KmsError, KmsUnreachable) as error:
            code, message = kms_errors.classify(error)
            if code in (ErrorCode.ACCESS_DENIED, ErrorCode.BAD_REQUEST, ErrorCode.CLOCK_SKEW):
                # A stale or refused document must not be reused; after a time refusal the next
                # document also measures the clock again.
                self._keys.discard(key)
            if code is ErrorCode.CLOCK_SKEW:
                message = f"{message}; {self._clock_state()}; {CLOCK_SKEW_NEXT}"
            raise DecryptError(code, message) from error
        kms_ms = (time.perf_counter() - started) * 1000
        try:
            last4 = self._last_four(answer.ciphertext_for_recipient, key.private_key)
        except DecryptError as error:
            error.kms_key_arn = (
                answer.key_arn
            )  # KMS accepted this ciphertext: the refusal says under which key
            raise
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        return DecryptResult(last4, round(kms_ms, 2), elapsed_ms), answer.key_arn

    def _clock_state(self) -> str:
        reading = self.clock.reading
        return reading.describe() + " at the last document" if reading else "no document has been read yet"

    @staticmethod
    def _last_four(wrapped: bytes, private_key: Any) -> str:
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

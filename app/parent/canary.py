"""The boot canary: proves the whole crypto path on this host before it signals readiness.

One public test card number (the first in app/producer/cards.txt) is encrypted here with KMS under the
deployment's encryption context, sent straight to this host's own enclave (not through SQS, so no other
host can answer it), and decrypted there through attested KMS Decrypt; the last four digits that come back
must be the card's. The number itself is never printed, logged or put in an error: only its last four.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.parent.enclave_client import EnclaveError
from app.producer.card_file import load_cards
from app.shared import cards, protocol
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode, Op
from app.shared.queue_messages import encryption_context

CARD_ID_PREFIX = "canary-"
# Codes of the canary's own failures (the enclave's come from app.shared.protocol.ErrorCode).
ENCRYPT_REFUSED = "encrypt_refused"
WRONG_LAST4 = "wrong_last4"
UNREADABLE_ANSWER = "unreadable_answer"


class CanaryError(Exception):
    """The canary failed: `code` names the step's answer (the enclave's error code for a refused decrypt),
    `reason` is KMS's or the enclave's own message. Never carries a card number."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class CanarySettings:
    key_id: str
    region: str
    encryption_context: Mapping[str, str]


@dataclass(frozen=True)
class CanaryResult:
    card_id: str
    last4: str
    elapsed_ms: float

    def line(self, key_id: str) -> str:
        return (
            f"canary ok: this host's enclave decrypted the test card ending {self.last4} through attested "
            f"KMS Decrypt under {key_id} ({self.elapsed_ms:.0f} ms)"
        )


def canary_card() -> str:
    """A public test number (app/producer/cards.txt): the first, so every host proves the same card."""
    return load_cards()[0]


def run_canary(
    settings: CanarySettings,
    *,
    kms: Any,
    enclave: Any,
    credentials: Callable[[], Credentials],
    number: str | None = None,
) -> CanaryResult:
    """Encrypt, ask the enclave, compare the last four; raise CanaryError naming what went wrong."""
    card = number or canary_card()
    card_id = f"{CARD_ID_PREFIX}{secrets.token_hex(8)}"
    context = encryption_context(dict(settings.encryption_context), card_id)
    started = time.monotonic()
    try:
        blob = kms.encrypt(KeyId=settings.key_id, Plaintext=card.encode("ascii"), EncryptionContext=context)
    except (BotoCoreError, ClientError) as error:
        raise CanaryError(ENCRYPT_REFUSED, f"KMS Encrypt on this host: {_kms_answer(error)}") from None
    try:
        lent = credentials()
    except Exception as error:  # IMDS unreachable, a role without credentials: say so, not a traceback
        raise CanaryError(
            ErrorCode.CREDENTIALS_EXPIRED.value, f"no credentials: {type(error).__name__}"
        ) from None
    request = DecryptRequest(
        ciphertext=blob["CiphertextBlob"],
        encryption_context=context,
        region=settings.region,
        credentials=lent,
        key_id=settings.key_id,
    )
    try:
        answer = protocol.parse_decrypt_result(enclave.call(Op.DECRYPT, protocol.decrypt_body(request)))
    except EnclaveError as error:
        raise CanaryError(error.code.value, error.reason) from None
    except protocol.ProtocolError as error:
        raise CanaryError(UNREADABLE_ANSWER, f"the enclave's answer: {error}") from None
    expected = cards.last_four(card)
    if answer.last4 != expected:
        raise CanaryError(WRONG_LAST4, f"the enclave answered {answer.last4}, the card ends {expected}")
    return CanaryResult(card_id, answer.last4, (time.monotonic() - started) * 1000)


def _kms_answer(error: BotoCoreError | ClientError) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}"
    return type(error).__name__

"""The boot canary: proves the whole crypto path on this host before it signals readiness.

One public test card number (the first in app/producer/cards.txt) is encrypted here with KMS under the
deployment's encryption context, sent straight to this host's own enclave (not through SQS, so no other
host can answer it), and decrypted there through attested KMS Decrypt; the last four digits that come back
must be the card's. The number itself is never printed, logged or put in an error: only its last four.

KMS is eventually consistent: a new alias, or a key policy CloudFormation has just updated (a roll's new
PCR0), may take "typically less than a few seconds ... in some cases several minutes" to reach every KMS host,
with NotFoundException meanwhile, and the guide asks for a retry strategy (AWS KMS Developer Guide, "AWS KMS
eventual consistency"). So the canary tries again, a bounded number of times within a bounded time, when the
host's Encrypt answers NotFoundException or the enclave answers access_denied, and then fails with KMS's last
answer. It also tries again after `clock_skew`: the enclave then discards its attestation document, and the
next one measures its clock against the NSM's again (app/enclave/clock.py).
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from app.parent.enclave_client import EnclaveError
from app.producer import sender
from app.producer.card_file import load_cards
from app.shared import cards, protocol
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode, Op
from app.shared.queue_messages import encryption_context, new_card_id

CARD_ID_PREFIX = "canary-"
# Codes of the canary's own failures (the enclave's come from app.shared.protocol.ErrorCode).
ENCRYPT_REFUSED = "encrypt_refused"
WRONG_LAST4 = "wrong_last4"
UNREADABLE_ANSWER = "unreadable_answer"
# The waits between attempts: 1, 2, 4, 8 s, then every 15 s; the canary stops retrying once a wait would end
# more than RETRY_DEADLINE_S after its first attempt began (attempts take time too). Five minutes: KMS's
# propagation is "typically less than a few seconds" but "in some cases several minutes" (AWS KMS Developer
# Guide, "AWS KMS eventual consistency"). The relay unit's TimeoutStartSec (it runs the canary as its
# ExecStartPre) and the smallest boot_timeout_minutes leave room for it.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, *(15.0,) * 19)
RETRY_DEADLINE_S = 300.0
# KMS's answer to the host's Encrypt while a new alias or key has not reached every KMS host yet.
KMS_NOT_FOUND = "NotFoundException"
PROPAGATION_NOTE = "KMS may still be propagating a change"
CLOCK_NOTE = "the enclave measures its clock again with its next attestation document"
# The enclave's answers worth another attempt, and why.
RETRIED_ENCLAVE_CODES = {ErrorCode.ACCESS_DENIED: PROPAGATION_NOTE, ErrorCode.CLOCK_SKEW: CLOCK_NOTE}


class CanaryError(Exception):
    """The canary failed: `code` names the step's answer (the enclave's error code for a refused decrypt),
    `reason` is KMS's or the enclave's own message. `propagating`: an answer KMS gives while a change is
    still propagating (or another answer worth another try: `note` says why). Never carries a card number."""

    def __init__(
        self, code: str, reason: str, *, propagating: bool = False, note: str = PROPAGATION_NOTE
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.propagating = propagating
        self.note = note


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Retry:
    """How the canary waits for KMS to propagate a change; tests inject `sleep` and `clock`."""

    delays_s: tuple[float, ...] = RETRY_DELAYS_S
    deadline_s: float = RETRY_DEADLINE_S
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    note: Callable[[str], None] = _note


RETRY = Retry()


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
    retry: Retry | None = None,
) -> CanaryResult:
    """One canary, tried again while KMS answers as it does during propagation (`Retry`, module RETRY by
    default); raise the last CanaryError, naming what went wrong, when an attempt fails otherwise or the
    retries are used up."""
    policy = retry or RETRY
    card = number or canary_card()  # read once, not on every attempt
    started = policy.clock()
    attempts = len(policy.delays_s) + 1
    for attempt, delay in enumerate((*policy.delays_s, None), start=1):
        try:
            return _attempt(settings, kms=kms, enclave=enclave, credentials=credentials, card=card)
        except CanaryError as error:
            elapsed = policy.clock() - started
            if not error.propagating:
                raise
            if delay is None or elapsed + delay > policy.deadline_s:
                tried = f"attempt {attempt} of {attempts}, {elapsed:.0f} s after the first"
                raise CanaryError(error.code, f"{error.reason} ({tried})") from None
            policy.note(
                f"canary: attempt {attempt} of {attempts}: {error.code}: {error.reason}; {error.note}, "
                f"trying again in {delay:g} s"
            )
            policy.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _attempt(
    settings: CanarySettings,
    *,
    kms: Any,
    enclave: Any,
    credentials: Callable[[], Credentials],
    card: str,
) -> CanaryResult:
    """Encrypt, ask the enclave, compare the last four; raise CanaryError naming what went wrong."""
    card_id = new_card_id(lambda: f"{CARD_ID_PREFIX}{secrets.token_hex(8)}")
    context = encryption_context(dict(settings.encryption_context), card_id)
    started = time.monotonic()
    blob = _encrypt(kms, settings, card_id, card)
    try:
        lent = credentials()
    except Exception as error:  # IMDS unreachable, a role without credentials: say so, not a traceback
        raise CanaryError(
            ErrorCode.CREDENTIALS_EXPIRED.value, f"no credentials: {type(error).__name__}"
        ) from None
    request = DecryptRequest(
        ciphertext=blob,
        encryption_context=context,
        region=settings.region,
        credentials=lent,
        key_id=settings.key_id,
    )
    try:
        answer = protocol.parse_decrypt_result(enclave.call(Op.DECRYPT, protocol.decrypt_body(request)))
    except EnclaveError as error:
        # A key policy just updated (a roll's new PCR0) may refuse for a while: KMS's propagation.
        note = RETRIED_ENCLAVE_CODES.get(error.code)
        raise CanaryError(
            error.code.value, error.reason, propagating=note is not None, note=note or PROPAGATION_NOTE
        ) from None
    except protocol.ProtocolError as error:
        raise CanaryError(UNREADABLE_ANSWER, f"the enclave's answer: {error}") from None
    expected = cards.last_four(card)
    if answer.last4 != expected:
        raise CanaryError(WRONG_LAST4, f"the enclave answered {answer.last4}, the card ends {expected}")
    return CanaryResult(card_id, answer.last4, (time.monotonic() - started) * 1000)


def _encrypt(kms: Any, settings: CanarySettings, card_id: str, card: str) -> bytes:
    """The producer's KMS Encrypt, on this host; NotFoundException (an alias or key not yet everywhere) is
    worth a retry."""
    try:
        return sender.encrypt_card(kms, settings.key_id, settings.encryption_context, card_id, card)
    except (BotoCoreError, ClientError) as error:
        not_found = (
            isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") == KMS_NOT_FOUND
        )
        raise CanaryError(
            ENCRYPT_REFUSED, f"KMS Encrypt on this host: {_kms_answer(error)}", propagating=not_found
        ) from None


def _kms_answer(error: BotoCoreError | ClientError) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}"
    return type(error).__name__

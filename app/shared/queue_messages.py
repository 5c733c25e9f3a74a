"""The SQS message bodies: a card to process (producer → relay) and its outcome (relay → results).

Schema version 1, JSON. A card message carries only the KMS ciphertext and a card id; no part of the
number is ever in clear on a queue. The encryption context is the configured fixed pairs plus
`card_id`, so a ciphertext cannot be replayed under another card's id. Hand-made messages (AWS CLI)
need only `version`, `card_id` and `ciphertext`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.shared import cards, limits, result_proof

SCHEMA_VERSION = 1
CARD_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # matched with fullmatch: no trailing newline
MAX_MESSAGE_ID_CHARS = 128  # SQS message ids are 36-character UUIDs
MAX_CIPHERTEXT_BYTES = 6144  # KMS CiphertextBlob for 4 KiB of plaintext stays well below this
CONTEXT_CARD_ID_KEY = "card_id"
CARD_ID_MAX_CHARS = 64
# Size caps, checked before any parse. A card body: the largest ciphertext in base64 (8,192), plus 512 for
# the rest of the largest CardMessage (~170: the longest id, sent_at, the keys) and 512 more for a
# hand-made body's whitespace: 9,216.
# A result: a real Nitro attestation document is ~4.5-4.7 KB (~6.3 KB base64) and the longest error
# message 512 characters (up to ~3 KB as JSON \u escapes): ~10 KB at most, so 16 KiB.
MAX_CARD_BODY_CHARS = 4 * -(-MAX_CIPHERTEXT_BYTES // 3) + 512 + 512
MAX_RESULT_BODY_CHARS = 16 * 1024


class MalformedMessage(ValueError):
    """An SQS body we cannot process (permanent: it goes to the dead-letter queue with this reason)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedMessage(f"{name} must be an ISO-8601 string")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise MalformedMessage(f"{name} is not ISO-8601: {limits.echo(value)}") from error


def _load_object(body: str | bytes, max_chars: int) -> dict[str, Any]:
    try:
        parsed = limits.loads(body, max_chars=max_chars)
    except limits.JsonRefused as error:
        raise MalformedMessage(f"body refused: {error}") from error
    if not isinstance(parsed, dict):
        raise MalformedMessage("body is not a JSON object")
    version = parsed.get("version")
    # `type(...) is int`: JSON true and 1.0 compare equal to 1 in Python, and must not pass.
    if type(version) is not int or version != SCHEMA_VERSION:
        raise MalformedMessage(
            f"unsupported version {limits.echo(version)} (expected the integer {SCHEMA_VERSION})"
        )
    return parsed


def _clipped(text: str | None, limit: int) -> str | None:
    return None if text is None else limits.clip(text, limit)


def check_card_id(card_id: object) -> str:
    """The card id, or MalformedMessage: 1-64 of [A-Za-z0-9._:-], holding no card number in any grouping
    (`cards.CARD_NUMBER_RUN`): an id travels in clear (the encryption context, logs, results). The reason
    never repeats the id."""
    if not isinstance(card_id, str) or not CARD_ID_PATTERN.fullmatch(card_id):
        raise MalformedMessage("card_id missing or not 1-64 of [A-Za-z0-9._:-]")
    if cards.contains_card_number(card_id):
        raise MalformedMessage(
            f"card_id holds {cards.MIN_CARD_DIGITS} or more digits in a row (separators aside): "
            "it may be a card number, which must never travel in clear"
        )
    return card_id


def new_card_id(draw: Callable[[], str]) -> str:
    """A random id from `draw` that `check_card_id` accepts: random hex or a UUID holds 12 or more digits
    in a row now and then (about 3 in 100 UUIDs, across their dashes), so such a draw is drawn again."""
    while True:
        card_id = draw()
        try:
            return check_card_id(card_id)
        except MalformedMessage:
            continue


def encryption_context(fixed: dict[str, str], card_id: str) -> dict[str, str]:
    """The context a card is encrypted under: the deployment's fixed pairs plus its card id."""
    return {**fixed, CONTEXT_CARD_ID_KEY: card_id}


@dataclass(frozen=True)
class CardMessage:
    """Producer → relay. `ciphertext` is the raw KMS CiphertextBlob."""

    card_id: str
    ciphertext: bytes
    sent_at: datetime | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "card_id": self.card_id,
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }
        if self.sent_at is not None:
            body["sent_at"] = _iso(self.sent_at)
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str | bytes) -> CardMessage:
        parsed = _load_object(body, MAX_CARD_BODY_CHARS)
        card_id = check_card_id(parsed.get("card_id"))
        encoded = parsed.get("ciphertext")
        if not isinstance(encoded, str) or not encoded:
            raise MalformedMessage("ciphertext missing or not a base64 string")
        try:
            ciphertext = base64.b64decode(encoded, validate=True)
        except ValueError as error:  # binascii.Error, and ValueError for non-ASCII text
            raise MalformedMessage("ciphertext is not valid base64") from error
        if len(ciphertext) > MAX_CIPHERTEXT_BYTES:
            raise MalformedMessage(f"ciphertext of {len(ciphertext)} bytes exceeds {MAX_CIPHERTEXT_BYTES}")
        return cls(
            card_id=card_id, ciphertext=ciphertext, sent_at=_parse_iso(parsed.get("sent_at"), "sent_at")
        )


@dataclass(frozen=True)
class ResultMessage:
    """Relay → results queue: the outcome of one card. `last4` is set only when status is "ok"."""

    card_id: str | None
    message_id: str
    status: str  # "ok" or "rejected" (a rejected card is also parked on the dead-letter queue)
    last4: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    enclave_ms: float | None = None
    end_to_end_ms: float | None = None
    processed_at: datetime | None = None
    # The enclave's signature over `signed_fields()` and its attestation document (result_proof.py);
    # None when the relay, not the enclave, decided the outcome (e.g. malformed_message).
    proof: Mapping[str, Any] | None = field(default=None, repr=False)

    def signed_fields(self) -> result_proof.SignedFields:
        return result_proof.SignedFields(
            self.card_id, self.message_id, self.status, self.last4, self.error_code
        )

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "version": SCHEMA_VERSION,
            "card_id": _clipped(self.card_id, CARD_ID_MAX_CHARS),
            "message_id": limits.clip(self.message_id, MAX_MESSAGE_ID_CHARS),
            "status": self.status,
            "last4": self.last4,
            "error_code": self.error_code,
            "error_message": _clipped(self.error_message, limits.MAX_ERROR_MESSAGE_CHARS),
            "enclave_ms": self.enclave_ms,
            "end_to_end_ms": self.end_to_end_ms,
            "processed_at": _iso(self.processed_at or _utc_now()),
            "proof": None if self.proof is None else dict(self.proof),
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, body: str | bytes) -> ResultMessage:
        parsed = _load_object(body, MAX_RESULT_BODY_CHARS)
        status = parsed.get("status")
        if status not in ("ok", "rejected"):
            raise MalformedMessage(f"unknown status {status!r}")
        message_id = parsed.get("message_id")
        if not isinstance(message_id, str):
            raise MalformedMessage("message_id missing")
        card_id = parsed.get("card_id")
        if card_id is not None and not isinstance(card_id, str):  # a forged body may put anything here
            raise MalformedMessage("card_id is not a string or null")
        return cls(
            card_id=card_id,
            message_id=message_id,
            status=status,
            last4=parsed.get("last4"),
            error_code=parsed.get("error_code"),
            error_message=parsed.get("error_message"),
            enclave_ms=parsed.get("enclave_ms"),
            end_to_end_ms=parsed.get("end_to_end_ms"),
            processed_at=_parse_iso(parsed.get("processed_at"), "processed_at"),
            proof=_optional_object(parsed.get("proof"), "proof"),
        )


def _optional_object(value: Any, name: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise MalformedMessage(f"{name} must be a JSON object or null")
    return value

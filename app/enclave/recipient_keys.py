"""The enclave's RSA key pair, its result-signing key, and the attestation document that vouches for both.

One pair and one document serve every request for `KEY_LIFETIME_S`, then both are replaced. Why: an
RSA-2048 key takes ~50 ms to generate and the NSM call is a syscall round trip, which per request would
cost more than the KMS call itself, while the document must stay fresh for KMS (our emulator, like a
careful verifier, refuses documents older than five minutes). The first pair is made before the worker
serves (`prepare`), and its successor `RENEW_AHEAD_S` before it expires on a background thread, so no
request waits for a key. Each new document also sets the enclave's clock (`clock.EnclaveClock`), and its log
line says how far that clock is from the NSM's: at WARNING when the signing time is corrected (so `status`
shows it among recent errors), else INFO. The private key never leaves this object.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from app.enclave.clock import EnclaveClock
from app.enclave.kms_client import Recipient
from app.enclave.nsm import SecureModule
from app.shared import logs, result_proof

log = logging.getLogger(__name__)

KEY_LIFETIME_S = 240.0
RENEW_AHEAD_S = 30.0  # the next pair is made this long before the current one expires
RSA_KEY_BITS = 2048  # KMS Recipient requires RSA-2048 for RSAES_OAEP_SHA_256
RSA_PUBLIC_EXPONENT = 65537


@dataclass(frozen=True)
class RecipientKey:
    private_key: rsa.RSAPrivateKey = field(repr=False)
    attestation_document: bytes = field(repr=False)
    created_at: float
    recipient: Recipient = field(repr=False)  # the document, encoded once for every KMS call
    signing_key: ed25519.Ed25519PrivateKey = field(repr=False)
    document_b64: str = field(repr=False)  # the document, encoded once for every signed answer

    def sign(self, fields: result_proof.SignedFields) -> dict[str, object]:
        return result_proof.sign(self.signing_key, self.document_b64, fields)


class RecipientKeys:
    """Thread-safe holder of the current pair; renews it ahead of expiry, or at once when it must."""

    def __init__(
        self, nsm: SecureModule, *, lifetime_s: float = KEY_LIFETIME_S, clock: EnclaveClock | None = None
    ) -> None:
        self._nsm = nsm
        self._clock = clock or EnclaveClock()
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._current: RecipientKey | None = None
        self._renewing = False

    def prepare(self) -> RecipientKey:
        """Make the first pair now (a worker calls this before it accepts connections)."""
        return self.current()

    def current(self) -> RecipientKey:
        with self._lock:
            now = time.monotonic()
            key = self._current
            if key is None or now - key.created_at >= self._lifetime_s:
                key = self._current = self._make(now)
            elif now - key.created_at >= self._lifetime_s - RENEW_AHEAD_S and not self._renewing:
                self._renewing = True
                threading.Thread(target=self._renew, name="recipient-key-renewal", daemon=True).start()
            return key

    def discard(self, key: RecipientKey) -> None:
        """Forget a pair KMS refused, so the next request attests afresh."""
        with self._lock:
            if self._current is key:
                self._current = None

    def _renew(self) -> None:
        try:
            fresh = self._make(time.monotonic())
            with self._lock:
                self._current = fresh
        finally:
            with self._lock:
                self._renewing = False

    def _make(self, now: float) -> RecipientKey:
        private_key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_key = ed25519.Ed25519PrivateKey.generate()
        user_data = result_proof.key_user_data(signing_key.public_key())
        document = self._clock.attest(self._nsm, public_key=public_der, user_data=user_data)
        reading = self._clock.reading
        round_trip_s = self._clock.last_round_trip_s
        # Once per document, so at most one line per worker every KEY_LIFETIME_S (plus one per clock_skew).
        log.log(
            logging.WARNING if reading is not None and reading.corrected else logging.INFO,
            "new key pair and attestation document",
            extra=logs.fields(
                clock_skew_ms=reading.skew_ms if reading else None,
                clock_corrected=reading.corrected if reading else False,
                nsm_round_trip_ms=round(round_trip_s * 1000) if round_trip_s is not None else None,
            ),
        )
        return RecipientKey(
            private_key, document, now, Recipient.for_document(document),
            signing_key, base64.b64encode(document).decode("ascii"),
        )  # fmt: skip

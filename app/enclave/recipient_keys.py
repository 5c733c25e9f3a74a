"""The enclave's RSA key pair and the attestation document that vouches for its public key.

One pair and one document serve every request for `KEY_LIFETIME_S`, then both are replaced. Why: an
RSA-2048 key takes ~50 ms to generate and the NSM call is a syscall round trip, which per request would
cost more than the KMS call itself, while the document must stay fresh for KMS (our emulator, like a
careful verifier, refuses documents older than five minutes). The private key never leaves this object.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.enclave.nsm import SecureModule

KEY_LIFETIME_S = 240.0
RSA_KEY_BITS = 2048  # KMS Recipient requires RSA-2048 for RSAES_OAEP_SHA_256
RSA_PUBLIC_EXPONENT = 65537
ATTESTATION_USER_DATA = b"nitro-enclave-demo/recipient-key"


@dataclass(frozen=True)
class RecipientKey:
    private_key: rsa.RSAPrivateKey = field(repr=False)
    attestation_document: bytes = field(repr=False)
    created_at: float


class RecipientKeys:
    """Thread-safe holder that rotates the pair lazily, on the first request after it expires."""

    def __init__(self, nsm: SecureModule, *, lifetime_s: float = KEY_LIFETIME_S) -> None:
        self._nsm = nsm
        self._lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self._current: RecipientKey | None = None

    def current(self) -> RecipientKey:
        with self._lock:
            now = time.monotonic()
            if self._current is None or now - self._current.created_at >= self._lifetime_s:
                self._current = self._make(now)
            return self._current

    def discard(self, key: RecipientKey) -> None:
        """Forget a pair KMS refused, so the next request attests afresh."""
        with self._lock:
            if self._current is key:
                self._current = None

    def _make(self, now: float) -> RecipientKey:
        private_key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        document = self._nsm.attest(public_key=public_der, user_data=ATTESTATION_USER_DATA)
        return RecipientKey(private_key, document, now)

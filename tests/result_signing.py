"""Test helper: a software enclave's result signing (the enclave's own RecipientKeys over a SoftwareNsm),
so tests can publish results signed as the pinned image, or as another image, without a whole stack."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from app.enclave.recipient_keys import RecipientKeys
from app.local.software_nsm import LocalPki, SoftwareNsm
from app.shared import result_proof
from app.shared.queue_messages import ResultMessage
from app.shared.result_proof import ResultVerifier, SignedFields
from tests.attestation_helpers import local_pki

PINNED_PCR0 = bytes.fromhex("ab" * 48)
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-4000-8000-000000000001"
FIXED_CONTEXT = {"app": "test"}
OTHER_PCR0 = bytes.fromhex("cd" * 48)


class SigningEnclave:
    """Signs results as an enclave measuring `pcr0` would (the same code the enclave runs)."""

    def __init__(self, pcr0: bytes = PINNED_PCR0, pki: LocalPki | None = None) -> None:
        self.pki = pki or local_pki()
        self.pcr0_hex = pcr0.hex()
        self._keys = RecipientKeys(SoftwareNsm(self.pki, {0: pcr0}))

    def sign(self, result: ResultMessage, **bound: str | None) -> ResultMessage:
        return dataclasses.replace(result, proof=self.proof(result.signed_fields(), **bound))

    def proof(self, fields: SignedFields, **bound: str | None) -> dict[str, object]:
        """Signed as the enclave signs after KMS decrypted under KEY_ARN with FIXED_CONTEXT + the card id
        (`bound` overrides kms_key_arn / ciphertext_sha256 / context_sha256)."""
        defaults: dict[str, str | None] = {
            "kms_key_arn": KEY_ARN,
            "ciphertext_sha256": result_proof.sha256_hex(b"ciphertext"),
            "context_sha256": result_proof.context_sha256({**FIXED_CONTEXT, "card_id": fields.card_id or ""}),
        }
        values = {**defaults, **bound}
        return self._keys.current().sign(
            dataclasses.replace(
                fields,
                kms_key_arn=values["kms_key_arn"],
                ciphertext_sha256=values["ciphertext_sha256"],
                context_sha256=values["context_sha256"],
            )
        )

    def verifier(self) -> ResultVerifier:
        return ResultVerifier(
            root_certificate_der=self.pki.root_certificate_der, pinned_pcr0=[self.pcr0_hex],
            pinned_key_arn=KEY_ARN, fixed_context=FIXED_CONTEXT,
        )  # fmt: skip

    def root_pem(self, directory: Path) -> Path:
        path = directory / "attestation-root.pem"
        path.write_bytes(self.pki.root.public_bytes(serialization.Encoding.PEM))
        return path

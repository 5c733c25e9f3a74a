"""Wraps plaintext for a recipient key the way KMS builds CiphertextForRecipient (local mode only).

CMS EnvelopedData v2, one KeyTransRecipientInfo v2 (RSAES-OAEP SHA-256/MGF1-SHA-256), AES-256-CBC content.
"""

from __future__ import annotations

import hashlib
import secrets

from asn1crypto import algos, cms
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MIN_RSA_KEY_BITS = 2048
AES_256_KEY_BYTES = 32
AES_BLOCK_BYTES = 16


class WrapError(ValueError):
    """The recipient public key cannot be used for key transport."""


def wrap_for_recipient(plaintext: bytes, recipient_public_key_der: bytes) -> bytes:
    """Return DER CMS ContentInfo(EnvelopedData) that only the holder of the RSA private key can open."""
    public_key = _load_rsa_public_key(recipient_public_key_der)
    content_key = secrets.token_bytes(AES_256_KEY_BYTES)
    iv = secrets.token_bytes(AES_BLOCK_BYTES)
    encrypted_key = public_key.encrypt(
        content_key, OAEP(mgf=MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    padder = padding.PKCS7(AES_BLOCK_BYTES * 8).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    encrypted_content = encryptor.update(padded) + encryptor.finalize()
    recipient = cms.KeyTransRecipientInfo(
        {
            "version": "v2",
            "rid": cms.RecipientIdentifier({"subject_key_identifier": _subject_key_identifier(public_key)}),
            "key_encryption_algorithm": _oaep_sha256_algorithm(),
            "encrypted_key": encrypted_key,
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v2",
            "recipient_infos": [cms.RecipientInfo({"ktri": recipient})],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                "encrypted_content": encrypted_content,
            },
        }
    )
    dumped: bytes = cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()
    return dumped


def _load_rsa_public_key(der: bytes) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_der_public_key(der)
    except ValueError as exc:
        raise WrapError("recipient public key is not a DER SubjectPublicKeyInfo") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise WrapError(f"recipient public key is {type(key).__name__}, expected RSA")
    if key.key_size < MIN_RSA_KEY_BITS:
        raise WrapError(f"recipient RSA key has {key.key_size} bits, at least {MIN_RSA_KEY_BITS} required")
    return key


def _subject_key_identifier(public_key: rsa.RSAPublicKey) -> bytes:
    # KMS sends a 32-byte identifier; SHA-256 of the SubjectPublicKeyInfo gives the same shape.
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def _oaep_sha256_algorithm() -> cms.KeyEncryptionAlgorithm:
    parameters = algos.RSAESOAEPParams(
        {
            "hash_algorithm": {"algorithm": "sha256"},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
        }
    )
    return cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_oaep", "parameters": parameters})

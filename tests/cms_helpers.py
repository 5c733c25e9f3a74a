"""Test helpers: RSA recipient keys and hand-built BER envelopes in the shape KMS sends."""

from __future__ import annotations

import functools
from typing import Any

from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

EOC = b"\x00\x00"


@functools.cache
def recipient_key(index: int = 0) -> rsa.RSAPrivateKey:
    del index  # distinct cache entries give distinct keys
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_der(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def to_kms_ber(der: bytes, *, chunk: int = 16) -> bytes:
    """Re-encode a DER envelope with indefinite lengths and chunked content, as KMS does."""
    enveloped: Any = cms.ContentInfo.load(der)["content"]
    content_info = enveloped["encrypted_content_info"]
    ciphertext: bytes = content_info["encrypted_content"].native
    chunks = b"".join(
        b"\x04" + bytes([len(part)]) + part
        for part in (ciphertext[i : i + chunk] for i in range(0, len(ciphertext), chunk))
    )
    encrypted_content_info = (
        b"\x30\x80"
        + content_info["content_type"].dump()
        + content_info["content_encryption_algorithm"].dump()
        + b"\xa0\x80"
        + chunks
        + EOC
        + EOC
    )
    body = enveloped["version"].dump() + enveloped["recipient_infos"].dump() + encrypted_content_info
    oid = cms.ContentType("enveloped_data").dump()
    ber: bytes = b"\x30\x80" + oid + b"\xa0\x80" + b"\x30\x80" + body + EOC + EOC + EOC
    return ber


def mutate(der: bytes, change: Any) -> bytes:
    """Apply ``change(enveloped_data)`` to a parsed envelope and re-encode it."""
    content_info = cms.ContentInfo.load(der)
    change(content_info["content"])
    dumped: bytes = content_info.dump(force=True)
    return dumped

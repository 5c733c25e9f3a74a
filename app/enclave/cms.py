"""Unwraps KMS CiphertextForRecipient: BER CMS EnvelopedData, RSAES-OAEP-SHA256 key transport, AES-256-CBC.

Accepts exactly the shape KMS produces and nothing weaker. Errors never contain plaintext or key bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asn1crypto import cms
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_CMS_BYTES = 64 * 1024
AES_BLOCK_BYTES = 16
AES_256_KEY_BYTES = 32
KEY_ENCRYPTION_ALGORITHM = "RSAES_OAEP_SHA_256"
CONTENT_ENCRYPTION_ALGORITHM = "aes256_cbc"
MAX_REMEMBERED_ALGORITHMS = 4
_CHECKED_KEY_ENCRYPTIONS: set[bytes] = set()  # DER of OAEP AlgorithmIdentifiers that passed every check


class CmsError(Exception):
    """Base class: the CiphertextForRecipient cannot be unwrapped."""


class MalformedCms(CmsError):
    """The bytes are not the CMS EnvelopedData shape KMS returns."""


class UnsupportedAlgorithm(CmsError):
    """The envelope uses an algorithm or recipient kind other than KMS's."""


class DecryptionFailed(CmsError):
    """The key or content does not decrypt with this private key."""


@dataclass(frozen=True)
class CmsSummary:
    key_encryption_algorithm: str
    content_encryption_algorithm: str
    iv_length: int
    encrypted_key_length: int
    encrypted_content_length: int


@dataclass(frozen=True)
class _Envelope:
    encrypted_key: bytes
    iv: bytes
    encrypted_content: bytes


def describe_ciphertext_for_recipient(blob: bytes) -> CmsSummary:
    """Parse and check the envelope without decrypting anything."""
    envelope = _parse(blob)
    return CmsSummary(
        key_encryption_algorithm=KEY_ENCRYPTION_ALGORITHM,
        content_encryption_algorithm=CONTENT_ENCRYPTION_ALGORITHM,
        iv_length=len(envelope.iv),
        encrypted_key_length=len(envelope.encrypted_key),
        encrypted_content_length=len(envelope.encrypted_content),
    )


def unwrap_ciphertext_for_recipient(blob: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """Return the plaintext KMS wrapped for the holder of ``private_key``."""
    envelope = _parse(blob)
    if len(envelope.encrypted_key) != private_key.key_size // 8:
        raise DecryptionFailed(
            f"encrypted key is {len(envelope.encrypted_key)} bytes; "
            f"a {private_key.key_size}-bit RSA key expects {private_key.key_size // 8}"
        )
    try:
        content_key = private_key.decrypt(
            envelope.encrypted_key, OAEP(mgf=MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
        )
    except ValueError as exc:
        raise DecryptionFailed("the content key does not decrypt with this private key (RSA-OAEP)") from exc
    if len(content_key) != AES_256_KEY_BYTES:
        raise DecryptionFailed(f"content key is {len(content_key)} bytes, AES-256 needs {AES_256_KEY_BYTES}")
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(envelope.iv)).decryptor()
    padded = decryptor.update(envelope.encrypted_content) + decryptor.finalize()
    return _strip_pkcs7(padded)


def _strip_pkcs7(padded: bytes) -> bytes:
    unpadder = padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptionFailed("content padding is invalid (wrong key or corrupted content)") from exc


def _parse(blob: bytes) -> _Envelope:
    if len(blob) > MAX_CMS_BYTES:
        raise MalformedCms(f"CMS blob is {len(blob)} bytes, more than {MAX_CMS_BYTES}")
    try:
        return _parse_enveloped_data(cms.ContentInfo.load(blob, strict=True))
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise MalformedCms(f"CMS blob does not parse: {exc}") from exc


def _parse_enveloped_data(content_info: Any) -> _Envelope:
    content_type = content_info["content_type"].native
    if content_type != "enveloped_data":
        raise MalformedCms(f"ContentInfo holds {content_type!r}, expected 'enveloped_data'")
    enveloped = content_info["content"]
    recipients = enveloped["recipient_infos"]
    if len(recipients) != 1:
        raise MalformedCms(f"expected exactly one recipient, found {len(recipients)}")
    if recipients[0].name != "ktri":
        raise UnsupportedAlgorithm(f"recipient kind {recipients[0].name!r}, expected key transport ('ktri')")
    recipient = recipients[0].chosen
    _check_key_encryption_once(recipient["key_encryption_algorithm"])
    content = enveloped["encrypted_content_info"]
    iv = _check_content_encryption(content["content_encryption_algorithm"].native)
    encrypted_content = content["encrypted_content"].native
    if not isinstance(encrypted_content, bytes) or not encrypted_content:
        raise MalformedCms("the envelope has no encrypted content")
    if len(encrypted_content) % AES_BLOCK_BYTES:
        raise MalformedCms(f"encrypted content is {len(encrypted_content)} bytes, not whole AES blocks")
    encrypted_key = recipient["encrypted_key"].native
    if not isinstance(encrypted_key, bytes) or not encrypted_key:
        raise MalformedCms("the recipient has no encrypted key")
    return _Envelope(encrypted_key=encrypted_key, iv=iv, encrypted_content=encrypted_content)


def _check_key_encryption_once(algorithm: Any) -> None:
    """KMS sends the same OAEP AlgorithmIdentifier every time: check its DER fully once, then recognise it
    (turning the nested parameters into Python values cost more than the AES step)."""
    der = algorithm.dump()
    if der in _CHECKED_KEY_ENCRYPTIONS:
        return
    _check_key_encryption(algorithm.native)
    if len(_CHECKED_KEY_ENCRYPTIONS) < MAX_REMEMBERED_ALGORITHMS:
        _CHECKED_KEY_ENCRYPTIONS.add(der)


def _check_key_encryption(algorithm: dict[str, Any]) -> None:
    name = algorithm["algorithm"]
    if name != "rsaes_oaep":
        raise UnsupportedAlgorithm(f"key encryption {name!r}, expected RSAES-OAEP")
    params = algorithm["parameters"] or {}
    digest = params.get("hash_algorithm", {}).get("algorithm")
    mgf = params.get("mask_gen_algorithm", {})
    mgf_digest = (mgf.get("parameters") or {}).get("algorithm")
    label = params.get("p_source_algorithm", {}).get("parameters")
    if digest != "sha256" or mgf.get("algorithm") != "mgf1" or mgf_digest != "sha256":
        raise UnsupportedAlgorithm(
            f"RSAES-OAEP with hash {digest!r} and {mgf.get('algorithm')!r}/{mgf_digest!r}, "
            "expected SHA-256 with MGF1-SHA-256"
        )
    if label:
        raise UnsupportedAlgorithm("RSAES-OAEP with a non-empty label is not supported")


def _check_content_encryption(algorithm: dict[str, Any]) -> bytes:
    name = algorithm["algorithm"]
    if name != CONTENT_ENCRYPTION_ALGORITHM:
        raise UnsupportedAlgorithm(f"content encryption {name!r}, expected {CONTENT_ENCRYPTION_ALGORITHM!r}")
    iv = algorithm["parameters"]
    if not isinstance(iv, bytes) or len(iv) != AES_BLOCK_BYTES:
        raise MalformedCms(f"AES-CBC IV must be {AES_BLOCK_BYTES} bytes")
    return iv

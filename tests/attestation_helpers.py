"""Test helpers: a cached local PKI and re-signed variants of software attestation documents."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from app.local.software_nsm import LocalPki

PROTECTED_ES384 = cbor2.dumps({1: -35})


@functools.cache
def local_pki(index: int = 0) -> LocalPki:
    del index  # distinct cache entries give distinct PKIs
    return LocalPki.generate()


def sign_cose(payload: bytes, key: ec.EllipticCurvePrivateKey, protected: bytes = PROTECTED_ES384) -> bytes:
    to_be_signed = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(key.sign(to_be_signed, ec.ECDSA(hashes.SHA384())))
    return cbor2.dumps([protected, {}, payload, r.to_bytes(48, "big") + s.to_bytes(48, "big")])


def resigned(document: bytes, pki: LocalPki, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Decode a document's payload, apply ``change`` to it, and sign it again with the PKI's leaf key."""
    payload = cbor2.loads(cbor2.loads(document)[2])
    change(payload)
    return sign_cose(cbor2.dumps(payload), pki.leaf_key)

"""wrap_for_recipient produces the envelope shape KMS produces, for RSA recipients only."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.enclave.cms import describe_ciphertext_for_recipient, unwrap_ciphertext_for_recipient
from app.local.cms_wrap import WrapError, wrap_for_recipient
from tests.cms_helpers import public_der, recipient_key

CARD = b"4111111111111111"


def parsed(blob: bytes) -> Any:
    return cms.ContentInfo.load(blob)["content"]


def test_round_trips_through_unwrap() -> None:
    blob = wrap_for_recipient(CARD, public_der(recipient_key()))
    assert unwrap_ciphertext_for_recipient(blob, recipient_key()) == CARD


def test_envelope_matches_the_kms_shape() -> None:
    summary = describe_ciphertext_for_recipient(wrap_for_recipient(CARD, public_der(recipient_key())))
    assert (summary.iv_length, summary.encrypted_key_length, summary.encrypted_content_length) == (
        16,
        256,
        32,
    )


def test_versions_are_v2() -> None:
    enveloped = parsed(wrap_for_recipient(CARD, public_der(recipient_key())))
    ktri = enveloped["recipient_infos"][0].chosen
    assert (enveloped["version"].native, ktri["version"].native) == ("v2", "v2")


def test_rid_is_sha256_of_the_public_key() -> None:
    der = public_der(recipient_key())
    ktri = parsed(wrap_for_recipient(CARD, der))["recipient_infos"][0].chosen
    assert ktri["rid"].name == "subject_key_identifier"
    assert ktri["rid"].chosen.native == hashlib.sha256(der).digest()


def test_fresh_key_and_iv_each_time() -> None:
    der = public_der(recipient_key())
    assert wrap_for_recipient(CARD, der) != wrap_for_recipient(CARD, der)


def test_plaintext_is_not_in_the_envelope() -> None:
    assert CARD not in wrap_for_recipient(CARD, public_der(recipient_key()))


def test_rejects_an_ec_key() -> None:
    der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(WrapError, match="expected RSA"):
        wrap_for_recipient(CARD, der)


def test_rejects_a_short_rsa_key() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused
    with pytest.raises(WrapError, match="1024 bits"):
        wrap_for_recipient(CARD, public_der(small))


def test_rejects_bytes_that_are_not_a_key() -> None:
    with pytest.raises(WrapError, match="SubjectPublicKeyInfo"):
        wrap_for_recipient(CARD, b"\x30\x00")

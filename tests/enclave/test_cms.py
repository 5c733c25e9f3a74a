"""unwrap_ciphertext_for_recipient against the real KMS fixture and envelopes built like KMS builds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asn1crypto import algos, cms
from hypothesis import given, settings
from hypothesis import strategies as st

from app.enclave.cms import (
    CmsError,
    CmsSummary,
    DecryptionFailed,
    MalformedCms,
    UnsupportedAlgorithm,
    describe_ciphertext_for_recipient,
    unwrap_ciphertext_for_recipient,
)
from app.local.cms_wrap import wrap_for_recipient
from tests.cms_helpers import mutate, public_der, recipient_key, to_kms_ber

FIXTURE = Path(__file__).parent.parent / "fixtures" / "kms_ciphertext_for_recipient.ber"
CARD = b"4111111111111111"


def wrapped(plaintext: bytes = CARD) -> bytes:
    return wrap_for_recipient(plaintext, public_der(recipient_key()))


def test_real_kms_fixture_parses_with_the_expected_shape() -> None:
    assert describe_ciphertext_for_recipient(FIXTURE.read_bytes()) == CmsSummary(
        key_encryption_algorithm="RSAES_OAEP_SHA_256",
        content_encryption_algorithm="aes256_cbc",
        iv_length=16,
        encrypted_key_length=256,
        encrypted_content_length=48,
    )


def test_real_kms_fixture_refuses_a_key_that_is_not_the_recipient() -> None:
    with pytest.raises(DecryptionFailed, match="RSA-OAEP"):
        unwrap_ciphertext_for_recipient(FIXTURE.read_bytes(), recipient_key())


def test_unwraps_indefinite_length_chunked_ber() -> None:
    assert unwrap_ciphertext_for_recipient(to_kms_ber(wrapped(), chunk=16), recipient_key()) == CARD


def test_unwraps_ber_with_one_content_chunk_like_the_fixture() -> None:
    assert unwrap_ciphertext_for_recipient(to_kms_ber(wrapped(), chunk=64), recipient_key()) == CARD


def test_unwraps_der() -> None:
    assert unwrap_ciphertext_for_recipient(wrapped(), recipient_key()) == CARD


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=200))
def test_round_trips_any_plaintext(plaintext: bytes) -> None:
    assert unwrap_ciphertext_for_recipient(to_kms_ber(wrapped(plaintext)), recipient_key()) == plaintext


def test_wrong_private_key_fails_to_decrypt() -> None:
    with pytest.raises(DecryptionFailed):
        unwrap_ciphertext_for_recipient(wrapped(), recipient_key(1))


def test_corrupted_content_fails_without_revealing_plaintext() -> None:
    def corrupt(enveloped: Any) -> None:
        info = enveloped["encrypted_content_info"]
        content = bytearray(info["encrypted_content"].native)
        content[-1] ^= 0x01
        info["encrypted_content"] = bytes(content)

    with pytest.raises(DecryptionFailed, match="padding") as caught:
        unwrap_ciphertext_for_recipient(mutate(wrapped(), corrupt), recipient_key())
    assert CARD.decode() not in str(caught.value)
    assert CARD[-4:].decode() not in str(caught.value)


def test_two_recipients_are_malformed() -> None:
    def duplicate(enveloped: Any) -> None:
        only = enveloped["recipient_infos"][0]
        enveloped["recipient_infos"] = cms.RecipientInfos([only, only])

    with pytest.raises(MalformedCms, match="exactly one recipient, found 2"):
        describe_ciphertext_for_recipient(mutate(wrapped(), duplicate))


def test_oaep_with_sha1_is_unsupported() -> None:
    def use_sha1(enveloped: Any) -> None:
        ktri = enveloped["recipient_infos"][0].chosen
        ktri["key_encryption_algorithm"] = cms.KeyEncryptionAlgorithm(
            {
                "algorithm": "rsaes_oaep",
                "parameters": algos.RSAESOAEPParams(
                    {
                        "hash_algorithm": {"algorithm": "sha1"},
                        "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha1"}},
                    }
                ),
            }
        )

    with pytest.raises(UnsupportedAlgorithm, match="sha1"):
        describe_ciphertext_for_recipient(mutate(wrapped(), use_sha1))


def test_a_remembered_good_algorithm_never_lets_a_weaker_one_through() -> None:
    describe_ciphertext_for_recipient(wrapped())  # the KMS shape, now remembered
    test_oaep_with_sha1_is_unsupported()


def test_pkcs1_v15_key_transport_is_unsupported() -> None:
    def use_pkcs1(enveloped: Any) -> None:
        ktri = enveloped["recipient_infos"][0].chosen
        ktri["key_encryption_algorithm"] = cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"})

    with pytest.raises(UnsupportedAlgorithm, match="rsaes_pkcs1v15"):
        describe_ciphertext_for_recipient(mutate(wrapped(), use_pkcs1))


def test_aes128_content_is_unsupported() -> None:
    def use_aes128(enveloped: Any) -> None:
        info = enveloped["encrypted_content_info"]
        iv = info["content_encryption_algorithm"]["parameters"].native
        info["content_encryption_algorithm"] = {"algorithm": "aes128_cbc", "parameters": iv}

    with pytest.raises(UnsupportedAlgorithm, match="aes128_cbc"):
        describe_ciphertext_for_recipient(mutate(wrapped(), use_aes128))


def test_content_that_is_not_whole_blocks_is_malformed() -> None:
    def truncate(enveloped: Any) -> None:
        info = enveloped["encrypted_content_info"]
        info["encrypted_content"] = info["encrypted_content"].native[:-1]

    with pytest.raises(MalformedCms, match="AES blocks"):
        describe_ciphertext_for_recipient(mutate(wrapped(), truncate))


def test_other_content_type_is_malformed() -> None:
    data = cms.ContentInfo({"content_type": "data", "content": b"hello"}).dump()
    with pytest.raises(MalformedCms, match="'data'"):
        describe_ciphertext_for_recipient(data)


@pytest.mark.parametrize("blob", [b"", b"\x30\x80", b"not asn.1 at all", b"\x30\x03\x02\x01\x02"])
def test_garbage_is_malformed(blob: bytes) -> None:
    with pytest.raises(MalformedCms):
        describe_ciphertext_for_recipient(blob)


def test_trailing_bytes_are_malformed() -> None:
    with pytest.raises(MalformedCms):
        describe_ciphertext_for_recipient(FIXTURE.read_bytes() + b"\x00")


def test_oversized_blob_is_malformed() -> None:
    with pytest.raises(MalformedCms, match="more than"):
        describe_ciphertext_for_recipient(b"\x30" * (64 * 1024 + 1))


def test_all_errors_share_the_cms_base() -> None:
    assert all(issubclass(kind, CmsError) for kind in (MalformedCms, UnsupportedAlgorithm, DecryptionFailed))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=492), st.integers(min_value=1, max_value=255))
def test_any_corrupted_byte_of_the_fixture_raises_only_cms_errors(offset: int, xor: int) -> None:
    blob = FIXTURE.read_bytes()
    corrupted = blob[:offset] + bytes([blob[offset] ^ xor]) + blob[offset + 1 :]
    try:
        unwrap_ciphertext_for_recipient(corrupted, recipient_key())
    except CmsError:
        return
    pytest.fail("a corrupted envelope unwrapped")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=492))
def test_any_truncation_of_the_fixture_is_malformed(length: int) -> None:
    with pytest.raises(MalformedCms):
        describe_ciphertext_for_recipient(FIXTURE.read_bytes()[:length])

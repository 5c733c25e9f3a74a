"""Attestation parsing and verification: the real AWS document, then local documents bent one at a time."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.local.software_nsm import LocalPki, SoftwareNsm
from app.shared.attestation import (
    AWS_NITRO_ROOT_SHA256,
    AttestationError,
    BadSignature,
    CertificateExpired,
    MalformedDocument,
    NonceMismatch,
    StaleDocument,
    UntrustedChain,
    load_aws_nitro_root,
    parse_document,
    verify_document,
)
from tests.attestation_helpers import PROTECTED_ES384, local_pki, resigned, sign_cose

FIXTURES = Path(__file__).parent.parent / "fixtures"
REAL = base64.b64decode((FIXTURES / "real_attestation.b64").read_text())
REAL_AT = datetime(2024, 9, 9, 19, 49, 12, 400000, tzinfo=UTC)
PCR0 = bytes(range(48))


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def verify_real(document: bytes = REAL, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"root_certificate_der": load_aws_nitro_root(), "at": REAL_AT} | kwargs
    return verify_document(document, **options)


def local_document(pki: LocalPki | None = None, **kwargs: Any) -> bytes:
    return SoftwareNsm(pki or local_pki(), {0: PCR0}).attest(**kwargs)


def verify_local(document: bytes, **kwargs: Any) -> Any:
    return verify_document(document, root_certificate_der=local_pki().root_certificate_der, **kwargs)


def test_packaged_root_matches_the_pinned_fingerprint() -> None:
    assert hashlib.sha256(load_aws_nitro_root()).hexdigest() == AWS_NITRO_ROOT_SHA256


def test_packaged_root_is_the_fixture_root() -> None:
    fixture = (FIXTURES / "aws_nitro_root_g1.pem").read_bytes()
    packaged = Path(__file__).parents[2] / "app" / "shared" / "aws_nitro_root_g1.pem"
    assert packaged.read_bytes() == fixture


def test_real_document_parses() -> None:
    document = parse_document(REAL)
    assert (document.module_id, document.digest) == ("i-0bbf1bfe232b8c2ce-enc0191ba35c9d1b77a", "SHA384")
    assert document.timestamp == REAL_AT
    assert len(document.cabundle) == 4


def test_real_document_is_debug_mode_with_zero_pcrs() -> None:
    document = parse_document(REAL)
    assert document.debug_mode
    assert sorted(document.pcrs) == list(range(16))
    assert document.pcr_hex(0) == "00" * 48


def test_real_document_carries_its_nonce_and_user_data() -> None:
    document = parse_document(REAL)
    assert len(document.nonce or b"") == 20
    assert len(document.user_data or b"") == 68


def test_real_document_verifies_at_its_own_timestamp() -> None:
    assert verify_real().module_id == "i-0bbf1bfe232b8c2ce-enc0191ba35c9d1b77a"


def test_real_document_fails_now_because_intermediates_expired() -> None:
    with pytest.raises(CertificateExpired, match="not at"):
        verify_document(REAL, root_certificate_der=load_aws_nitro_root())


def test_tagged_cose_sign1_verifies() -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(18, cbor2.loads(REAL)))
    assert verify_real(tagged).timestamp == REAL_AT


def test_flipped_payload_byte_is_a_bad_signature() -> None:
    user_data = parse_document(REAL).user_data
    assert user_data is not None
    with pytest.raises(BadSignature, match="does not verify"):
        verify_real(flip(REAL, REAL.index(user_data) + 5))


def test_flipped_signature_byte_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature):
        verify_real(flip(REAL, len(REAL) - 10))


def test_wrong_root_is_untrusted() -> None:
    with pytest.raises(UntrustedChain, match=AWS_NITRO_ROOT_SHA256):
        verify_real(root_certificate_der=local_pki().root_certificate_der)


def test_fresh_real_document_passes_max_age() -> None:
    assert verify_real(at=REAL_AT + timedelta(seconds=299), max_age_s=300).debug_mode


def test_old_document_is_stale() -> None:
    with pytest.raises(StaleDocument, match=r"301\.000s old"):
        verify_real(at=REAL_AT + timedelta(seconds=301), max_age_s=300)


def test_document_from_the_future_is_stale() -> None:
    ahead = SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: datetime.now(UTC) + timedelta(minutes=10))
    with pytest.raises(StaleDocument, match="future"):
        verify_local(ahead.attest(), max_age_s=300)


def test_matching_nonce_passes() -> None:
    nonce = parse_document(REAL).nonce
    assert verify_real(expected_nonce=nonce).nonce == nonce


def test_other_nonce_is_a_mismatch() -> None:
    with pytest.raises(NonceMismatch, match="expected 00ff"):
        verify_real(expected_nonce=b"\x00\xff")


def test_missing_nonce_is_a_mismatch() -> None:
    with pytest.raises(NonceMismatch, match="nonce is none"):
        verify_local(local_document(), expected_nonce=b"\x01")


def test_local_document_verifies_against_the_local_root() -> None:
    document = verify_local(local_document(public_key=b"pk"), max_age_s=5)
    assert (document.public_key, document.pcrs[0], document.debug_mode) == (b"pk", PCR0, False)


def test_leaf_from_another_pki_is_untrusted() -> None:
    other = local_pki(1)
    mixed = dataclasses.replace(local_pki(), leaf=other.leaf, leaf_key=other.leaf_key)
    with pytest.raises(UntrustedChain, match="is not signed by"):
        verify_local(local_document(mixed))


def test_expired_chain_is_not_valid_now() -> None:
    old = LocalPki.generate(now=datetime.now(UTC) - timedelta(days=3), validity=timedelta(days=1))
    with pytest.raises(CertificateExpired):
        verify_document(local_document(old), root_certificate_der=old.root_certificate_der)


def test_chain_is_checked_at_the_given_time() -> None:
    old = LocalPki.generate(now=datetime.now(UTC) - timedelta(days=3), validity=timedelta(days=1))
    at = datetime.now(UTC) - timedelta(days=3)
    assert verify_document(local_document(old), root_certificate_der=old.root_certificate_der, at=at)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_real(at=REAL_AT.replace(tzinfo=None))


@pytest.mark.parametrize(
    "blob",
    [b"", b"\xff", cbor2.dumps([1, 2, 3]), cbor2.dumps(cbor2.CBORTag(17, [b"", {}, b"", b""])), b"\x84" * 10],
)
def test_non_cose_bytes_are_malformed(blob: bytes) -> None:
    with pytest.raises(MalformedDocument):
        parse_document(blob)


def test_es256_header_is_malformed() -> None:
    protected = cbor2.dumps({1: -7})
    document = sign_cose(cbor2.loads(local_document())[2], local_pki().leaf_key, protected)
    with pytest.raises(MalformedDocument, match="-7"):
        parse_document(document)


def test_oversized_document_is_malformed() -> None:
    with pytest.raises(MalformedDocument, match="more than"):
        parse_document(b"\x00" * (32 * 1024 + 1))


@pytest.mark.parametrize("field", ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle"])
def test_missing_required_field_is_malformed(field: str) -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload.pop(field))
    with pytest.raises(MalformedDocument, match=field):
        verify_local(document)


def test_wrong_length_pcr_is_malformed() -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload["pcrs"].update({3: b"short"}))
    with pytest.raises(MalformedDocument, match="PCR3"):
        parse_document(document)


def test_text_public_key_is_malformed() -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload.update(public_key="pk"))
    with pytest.raises(MalformedDocument, match="public_key"):
        parse_document(document)


def test_out_of_range_timestamp_is_malformed() -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload.update(timestamp=2**62))
    with pytest.raises(MalformedDocument, match="out of range"):
        parse_document(document)


def test_other_digest_is_malformed() -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload.update(digest="SHA256"))
    with pytest.raises(MalformedDocument, match="SHA256"):
        parse_document(document)


def test_oversized_user_data_is_malformed() -> None:
    document = resigned(local_document(), local_pki(), lambda payload: payload.update(user_data=b"u" * 513))
    with pytest.raises(MalformedDocument, match="513 bytes"):
        parse_document(document)


def test_pcr_hex_of_an_absent_pcr_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="PCR20"):
        parse_document(REAL).pcr_hex(20)


def test_protected_header_is_es384_like_aws() -> None:
    assert cbor2.loads(REAL)[0] == PROTECTED_ES384


def test_every_error_is_an_attestation_error() -> None:
    kinds = (
        MalformedDocument,
        BadSignature,
        UntrustedChain,
        CertificateExpired,
        StaleDocument,
        NonceMismatch,
    )
    assert all(issubclass(kind, AttestationError) for kind in kinds)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(REAL) - 1), st.integers(min_value=1, max_value=255))
def test_any_corrupted_byte_raises_only_attestation_errors(offset: int, xor: int) -> None:
    corrupted = REAL[:offset] + bytes([REAL[offset] ^ xor]) + REAL[offset + 1 :]
    with pytest.raises(AttestationError):
        verify_real(corrupted)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(REAL) - 1))
def test_any_truncation_is_malformed(length: int) -> None:
    with pytest.raises(MalformedDocument):
        parse_document(REAL[:length])

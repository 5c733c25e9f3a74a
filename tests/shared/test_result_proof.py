"""Signed results: the canonical bytes, and what the verifier accepts and refuses (real Ed25519, real
software attestation documents chained to a local root)."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.local.software_nsm import SoftwareNsm
from app.shared import attestation, result_proof
from app.shared.queue_messages import ResultMessage
from app.shared.result_proof import ResultVerifier, SignedFields
from tests.attestation_helpers import local_pki
from tests.result_signing import FIXED_CONTEXT, KEY_ARN, OTHER_PCR0, PINNED_PCR0, SigningEnclave

ENCLAVE = SigningEnclave()
OK = ResultMessage("card-a", "m-1", "ok", last4="1111")
REJECTED = ResultMessage("card-b", "m-2", "rejected", error_code="not_a_card", error_message="Luhn")


def _verifier(**kwargs: Any) -> ResultVerifier:
    defaults = {"pinned_pcr0": [PINNED_PCR0.hex()], "pinned_key_arn": KEY_ARN, "fixed_context": FIXED_CONTEXT}
    return ResultVerifier(root_certificate_der=ENCLAVE.pki.root_certificate_der, **{**defaults, **kwargs})


def _verdict(result: ResultMessage, verifier: ResultVerifier | None = None) -> result_proof.Verdict:
    return (verifier or _verifier()).verify(result.signed_fields(), result.proof)


def test_the_proof_names_the_ciphertext_and_context_hashes() -> None:
    assert result_proof.canonical_context({"b": "1", "a": "é"}) == b'{"a":"\\u00e9","b":"1"}'


def test_the_encoding_is_versioned_length_prefixed_and_tells_absent_from_empty() -> None:
    encoded = SignedFields("c", "m", "ok", "1111", None).encode()
    assert (
        encoded
        == result_proof.SIGNED_PREFIX
        + b"\x01\x00\x01c\x01\x00\x01m\x01\x00\x02ok\x01\x00\x041111\x00\x00\x00\x00"
    )
    assert result_proof.SIGNED_PREFIX == b"nitro-enclave-demo/result/v2\x00"
    assert (
        SignedFields("", "m", "ok", None, None).encode() != SignedFields(None, "m", "ok", None, None).encode()
    )
    assert (
        SignedFields("ab", "c", "ok", None, None).encode()
        != SignedFields("a", "bc", "ok", None, None).encode()
    )


@pytest.mark.parametrize("result", [OK, REJECTED])
def test_a_result_signed_by_the_pinned_image_is_verified(result: ResultMessage) -> None:
    verdict = _verdict(ENCLAVE.sign(result))
    assert verdict == result_proof.Verdict(True, "ciphertext not compared: no record of what was sent")
    sent = result_proof.sha256_hex(b"ciphertext")
    assert _verifier().verify(ENCLAVE.sign(result).signed_fields(), ENCLAVE.sign(result).proof,
                              ciphertext_sha256=sent) == result_proof.Verdict(True)  # fmt: skip


def test_an_answer_kms_gave_under_another_key_is_unverified() -> None:
    """The enclave's genuine answer, but KMS decrypted under someone else's key (their account, their
    ciphertext of a number they chose, the victim's card id in the context)."""
    other = "arn:aws:kms:eu-west-1:444455556666:key/00000000-0000-4000-8000-000000000002"
    verdict = _verdict(ENCLAVE.sign(OK, kms_key_arn=other))
    assert not verdict.verified
    assert f"not the pinned key {KEY_ARN}" in verdict.reason
    assert not _verifier(pinned_key_arn=None).verify(OK.signed_fields(), ENCLAVE.sign(OK).proof).verified


def test_a_refusal_kms_never_accepted_is_unverified() -> None:
    verdict = _verdict(ENCLAVE.sign(REJECTED, kms_key_arn=None))
    assert not verdict.verified
    assert verdict.reason == result_proof.NOT_AUTHENTICATED_BY_KMS


def test_another_context_or_ciphertext_is_unverified() -> None:
    other_context = result_proof.context_sha256({"app": "other", "card_id": "card-a"})
    assert "encryption context" in _verdict(ENCLAVE.sign(OK, context_sha256=other_context)).reason
    signed = ENCLAVE.sign(OK)
    verdict = _verifier().verify(
        signed.signed_fields(), signed.proof, ciphertext_sha256=result_proof.sha256_hex(b"another")
    )
    assert "not the ciphertext sent" in verdict.reason


def test_a_version_1_proof_is_unverified() -> None:
    signed = ENCLAVE.sign(OK)
    assert signed.proof is not None
    assert "version 2" in _verdict(dataclasses.replace(signed, proof={**signed.proof, "v": 1})).reason


def test_the_proof_survives_the_queue_body() -> None:
    body = ENCLAVE.sign(OK).to_json()
    assert _verdict(ResultMessage.from_json(body)).verified


@pytest.mark.parametrize(
    "change",
    [
        {"card_id": "card-z"},
        {"card_id": None},
        {"message_id": "m-9"},
        {"status": "rejected"},
        {"last4": "4242"},
        {"last4": None, "error_code": "not_a_card"},
    ],
)
def test_a_tampered_signed_field_is_unverified(change: dict[str, Any]) -> None:
    tampered = dataclasses.replace(ENCLAVE.sign(OK), **change)
    verdict = _verdict(tampered)
    assert not verdict.verified
    assert verdict.reason == "signature does not match the result's fields"


def test_a_tampered_error_code_is_unverified() -> None:
    assert not _verdict(dataclasses.replace(ENCLAVE.sign(REJECTED), error_code="access_denied")).verified


def test_a_tampered_signature_or_document_is_unverified() -> None:
    signed = ENCLAVE.sign(OK)
    assert signed.proof is not None
    signature = bytearray(base64.b64decode(signed.proof["signature"]))
    signature[0] ^= 1
    forged_signature = {**signed.proof, "signature": base64.b64encode(bytes(signature)).decode()}
    assert not _verdict(dataclasses.replace(signed, proof=forged_signature)).verified
    document = bytearray(base64.b64decode(signed.proof["document"]))
    document[-1] ^= 1
    forged_document = {**signed.proof, "document": base64.b64encode(bytes(document)).decode()}
    assert (
        "attestation document refused" in _verdict(dataclasses.replace(signed, proof=forged_document)).reason
    )


def test_a_result_signed_by_another_image_is_unverified() -> None:
    other = SigningEnclave(OTHER_PCR0, pki=ENCLAVE.pki)
    verdict = _verdict(other.sign(OK))
    assert not verdict.verified
    assert "not the pinned image" in verdict.reason


def test_a_result_signed_under_another_root_is_unverified() -> None:
    verdict = _verdict(SigningEnclave(PINNED_PCR0, pki=local_pki(1)).sign(OK))
    assert "UntrustedChain" in verdict.reason


def test_a_debug_mode_enclave_is_unverified_even_when_zeros_are_pinned() -> None:
    debug = SigningEnclave(bytes(48), pki=ENCLAVE.pki)
    verifier = _verifier(pinned_pcr0=["00" * 48])
    assert "debug-mode" in _verdict(debug.sign(OK), verifier).reason


def test_a_result_made_from_scratch_is_unverified() -> None:
    """Someone with their own Ed25519 key and a document of the right image they copied off the queue."""
    copied = ENCLAVE.sign(OK).proof
    assert copied is not None
    own_key = Ed25519PrivateKey.generate()
    forged = result_proof.sign(own_key, copied["document"], OK.signed_fields())
    assert not _verdict(dataclasses.replace(OK, proof=forged)).verified
    assert _verdict(OK).reason == "no proof: the enclave did not sign this result"
    scratch = {"v": 1, "alg": "Ed25519", "signature": "AAAA", "document": "AAAA"}
    assert not _verdict(dataclasses.replace(OK, proof=scratch)).verified


def test_a_document_binding_no_result_key_is_unverified() -> None:
    """An attest document (nonce, no result key) of the pinned image cannot vouch for a result."""
    document = SoftwareNsm(ENCLAVE.pki, {0: PINNED_PCR0}).attest(nonce=b"n" * 32, user_data=b"other")
    proof = result_proof.sign(
        Ed25519PrivateKey.generate(), base64.b64encode(document).decode(), OK.signed_fields()
    )
    assert "binds no result key" in _verdict(dataclasses.replace(OK, proof=proof)).reason


def test_fields_of_the_wrong_type_are_unverified_not_a_crash() -> None:
    signed = ENCLAVE.sign(OK)
    assert not _verdict(dataclasses.replace(signed, last4=1111)).verified  # type: ignore[arg-type]
    assert not _verdict(dataclasses.replace(signed, proof={"v": True})).verified


def test_an_old_document_is_accepted_up_to_the_limit_and_checked_at_its_own_time() -> None:
    signed = ENCLAVE.sign(OK)
    later = datetime.now(UTC) + timedelta(days=13)
    assert _verdict(signed, _verifier(clock=lambda: later)).verified  # chain checked at the document's time
    too_late = datetime.now(UTC) + timedelta(days=15)
    assert "old, more than" in _verdict(signed, _verifier(clock=lambda: too_late)).reason
    before = datetime.now(UTC) - timedelta(minutes=5)
    assert "in the future" in _verdict(signed, _verifier(clock=lambda: before)).reason


def test_a_verified_document_is_checked_once() -> None:
    verifier = _verifier()
    first, second = ENCLAVE.sign(OK), ENCLAVE.sign(REJECTED)
    assert _verdict(first, verifier).verified
    assert _verdict(second, verifier).verified
    assert len(verifier._documents) == 1


def test_a_flood_of_refused_documents_does_not_push_the_verified_one_out() -> None:
    verifier = _verifier()
    assert _verdict(ENCLAVE.sign(OK), verifier).verified
    signed = ENCLAVE.sign(OK)
    assert signed.proof is not None
    for i in range(result_proof._CACHE_ENTRIES + 10):  # distinct garbage documents
        junk = base64.b64encode(b"junk-%d" % i).decode()
        assert not _verdict(
            dataclasses.replace(signed, proof={**signed.proof, "document": junk}), verifier
        ).verified
    assert len(verifier._documents) == 1
    assert len(verifier._refused) == result_proof._FAILURE_CACHE_ENTRIES


def test_a_document_under_another_root_is_refused_before_its_signature_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[object] = []

    def counted(*args: object) -> None:
        checked.append(args)

    monkeypatch.setattr(attestation, "_verify_cose_signature", counted)
    verdict = _verdict(SigningEnclave(PINNED_PCR0, pki=local_pki(1)).sign(OK))
    assert "UntrustedChain" in verdict.reason
    assert checked == []

"""The enclave's decrypt path end to end in one process: software NSM → KMS client → TLS emulator.

Exercises the real KMS client (TLS with hostname check over the egress link, SigV4, Recipient) against
moto with the Recipient behaviour of real KMS, then the CMS unwrap and card checks.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.enclave.clock import EnclaveClock
from app.enclave.decryptor import DecryptError, Decryptor
from app.enclave.kms_client import KmsClient
from app.enclave.nsm import Stamp, TimedDocument
from app.enclave.recipient_keys import RENEW_AHEAD_S, RecipientKeys
from app.local import moto_fidelity
from app.local.emulator import Emulator, Endpoints, tls_files
from app.local.kms_enforcement import install_policy_enforcement, uninstall_policy_enforcement
from app.local.principals import ADMINISTRATOR
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, create_key, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki, SoftwareNsm
from app.shared import deployment, result_proof
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode
from app.shared.result_proof import ResultVerifier, SignedFields

from .forwarder import Forwarder

PINNED = bytes(range(48))
OTHER = bytes(reversed(range(48)))
CONTEXT = {**deployment.ENCRYPTION_CONTEXT, "card_id": "c-1"}
CREDS = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalPki, Path]:
    directory = tmp_path_factory.mktemp("pki")
    local = LocalPki.generate()
    local.save(directory)
    return local, directory


@pytest.fixture(scope="module")
def emulator(pki: tuple[LocalPki, Path]) -> Iterator[Endpoints]:
    local, directory = pki
    moto_fidelity.install()
    install_policy_enforcement(local.root_certificate_der)
    with Emulator(tls_files(local, directory)) as endpoints:
        yield endpoints
    uninstall_policy_enforcement()


@pytest.fixture(scope="module")
def key_id(emulator: Endpoints) -> str:
    """A key with the stack's key policy, pinned to PINNED, created by the administrator."""
    key, _ = create_key(local_client("kms", emulator.http, principal=ADMINISTRATOR), [PINNED.hex()])
    return key


def _encrypt(emulator: Endpoints, key_id: str, plaintext: bytes, context: dict[str, str] = CONTEXT) -> bytes:
    kms = local_client("kms", emulator.http)
    return bytes(kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"])


def _decryptor(
    pki: tuple[LocalPki, Path], emulator: Endpoints, monkeypatch: pytest.MonkeyPatch, pcr0: bytes = PINNED,
    clock: EnclaveClock | None = None,
) -> Decryptor:  # fmt: skip
    local, directory = pki
    monkeypatch.setenv("AWS_CA_BUNDLE", str(directory / TLS_CA_FILE))
    egress = f"tcp://127.0.0.1:{emulator.https.rsplit(':', 1)[1]}"
    kms = KmsClient(egress, max_connections=2, endpoint_url=emulator.https)
    return Decryptor(SoftwareNsm(local, {0: pcr0}), kms, clock=clock)


def _request(ciphertext: bytes, key_id: str, context: dict[str, str] = CONTEXT) -> DecryptRequest:
    return DecryptRequest(ciphertext, context, "us-east-1", CREDS, key_id)


def test_attested_decrypt_returns_only_the_last_four(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _decryptor(pki, emulator, monkeypatch).decrypt(
        _request(_encrypt(emulator, key_id, b"4111111111111111"), key_id)
    )
    assert result.last4 == "1111"
    assert result.kms_ms > 0


def test_wrong_encryption_context_is_invalid_ciphertext(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(
            _request(ciphertext, key_id, {**CONTEXT, "card_id": "c-2"})
        )
    assert caught.value.code is ErrorCode.INVALID_CIPHERTEXT


def test_a_ciphertext_under_another_key_is_refused_as_wrong_key(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_key, _ = create_key(local_client("kms", emulator.http, principal=ADMINISTRATOR), [PINNED.hex()])
    ciphertext = _encrypt(emulator, other_key, b"4111111111111111")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(_request(ciphertext, key_id))
    assert caught.value.code is ErrorCode.WRONG_KEY
    assert "IncorrectKeyException" in str(caught.value)


def test_an_enclave_with_another_measurement_is_denied(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch, pcr0=OTHER).decrypt(_request(ciphertext, key_id))
    assert caught.value.code is ErrorCode.ACCESS_DENIED
    assert "DenyDecryptOutsideThePinnedEnclave" in str(caught.value)
    assert OTHER.hex() in str(caught.value)


def test_a_plaintext_that_is_not_a_card_is_refused_without_echoing_it(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ciphertext = _encrypt(emulator, key_id, b"4111111111111112")  # fails Luhn
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(_request(ciphertext, key_id))
    assert caught.value.code is ErrorCode.NOT_A_CARD
    assert "411111111111111" not in str(caught.value)


SKEW_S = 400.0  # beyond SigV4's 5 minutes either way


def _skewed(skew_s: float, *, threshold_s: float | None = None) -> EnclaveClock:
    """An enclave clock `skew_s` off real time (the NSM's and the emulator's); threshold None: the default."""
    wall = lambda: time.time() + skew_s  # noqa: E731
    return (
        EnclaveClock(wall=wall) if threshold_s is None else EnclaveClock(wall=wall, threshold_s=threshold_s)
    )


@pytest.mark.parametrize("skew_s", [SKEW_S, -SKEW_S])
def test_an_enclave_clock_minutes_off_still_decrypts_signing_with_the_nsm_time(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch, skew_s: float
) -> None:
    clock = _skewed(skew_s)
    decryptor = _decryptor(pki, emulator, monkeypatch, clock=clock)
    result = decryptor.decrypt(_request(_encrypt(emulator, key_id, b"4111111111111111"), key_id))
    assert result.last4 == "1111"
    assert clock.reading is not None
    assert clock.reading.corrected
    # Measured around one NSM call, so off by that call's duration at most (milliseconds).
    assert abs(clock.reading.skew_ms - skew_s * 1000) < 5_000


WITHOUT_CORRECTION = {
    "behind": (-SKEW_S, "Signature expired: "),
    "ahead of": (SKEW_S, "Signature not yet current: "),
}


@pytest.mark.parametrize("way", WITHOUT_CORRECTION)
def test_without_the_correction_kms_refuses_the_signing_time_as_clock_skew(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    # The old form: the enclave signs with its own clock whatever the NSM says.
    skew_s, kms_words = WITHOUT_CORRECTION[way]
    decryptor = _decryptor(pki, emulator, monkeypatch, clock=_skewed(skew_s, threshold_s=float("inf")))
    with pytest.raises(DecryptError) as caught:
        decryptor.decrypt(_request(_encrypt(emulator, key_id, b"4111111111111111"), key_id))
    assert caught.value.code is ErrorCode.CLOCK_SKEW
    message = str(caught.value)
    assert message.startswith(f"KMS InvalidSignatureException: {kms_words}")
    assert re.search(
        rf"the enclave's clock is (399\.9|400\.0)\d\d s {way} the NSM's \(not corrected\)", message
    )


class SettableWall:
    """An enclave wall clock `skew_s` off real time that can be stepped; real monotonic time."""

    def __init__(self, skew_s: float) -> None:
        self.skew_s = skew_s

    def __call__(self) -> float:
        return time.time() + self.skew_s


def test_a_clock_set_right_after_the_document_still_signs_with_the_right_time(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 400 s ahead at the document, then set right (by whatever syncs it) before the first request.
    wall = SettableWall(SKEW_S)
    decryptor = _decryptor(pki, emulator, monkeypatch, clock=EnclaveClock(wall=wall))
    decryptor.prepare()
    wall.skew_s = 0.0
    assert (
        decryptor.decrypt(_request(_encrypt(emulator, key_id, b"4111111111111111"), key_id)).last4 == "1111"
    )


def test_after_a_time_refusal_the_document_is_discarded_and_the_next_request_measures_again(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Right at the document (no correction), then stepped 400 s ahead: KMS refuses the signing time.
    # Only a new document can notice, so the refused one must go.
    wall = SettableWall(0.0)
    clock = EnclaveClock(wall=wall)
    decryptor = _decryptor(pki, emulator, monkeypatch, clock=clock)
    first = decryptor._keys.prepare()
    wall.skew_s = SKEW_S
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    with pytest.raises(DecryptError) as caught:
        decryptor.decrypt(_request(ciphertext, key_id))
    assert caught.value.code is ErrorCode.CLOCK_SKEW
    assert str(caught.value).endswith(
        "(not corrected) at the last document; this document is discarded: the enclave's next request "
        "attests and measures its clock again"
    )
    assert decryptor.decrypt(_request(ciphertext, key_id)).last4 == "1111"
    assert decryptor._keys.current() is not first
    assert clock.reading is not None
    assert clock.reading.corrected


def test_unreachable_kms_is_retryable(pki: Any, emulator: Endpoints, key_id: str) -> None:
    local, _ = pki
    kms = KmsClient("tcp://127.0.0.1:1", max_connections=1, endpoint_url="https://localhost:1")
    decryptor = Decryptor(SoftwareNsm(local, {0: PINNED}), kms)
    with pytest.raises(DecryptError) as caught:
        decryptor.decrypt(_request(b"\x01" * 32, key_id))
    assert caught.value.code is ErrorCode.KMS_UNAVAILABLE


def test_one_key_pair_serves_many_requests_until_it_expires(pki: Any) -> None:
    local, _ = pki
    calls: list[bytes | None] = []
    nsm = SoftwareNsm(local, {0: PINNED})

    class CountingNsm:
        def attest(
            self,
            *,
            public_key: bytes | None = None,
            user_data: bytes | None = None,
            nonce: bytes | None = None,
        ) -> bytes:
            calls.append(public_key)
            return nsm.attest(public_key=public_key, user_data=user_data, nonce=nonce)

        def attest_timed(self, stamp: Callable[[], Stamp], **request: Any) -> TimedDocument:
            sent = stamp()
            return TimedDocument(self.attest(**request), sent, stamp())

    keys = RecipientKeys(CountingNsm(), lifetime_s=3600)
    assert keys.current() is keys.current()
    assert len(calls) == 1
    expired = RecipientKeys(CountingNsm(), lifetime_s=0)
    assert expired.current() is not expired.current()


@pytest.mark.parametrize(("skew_s", "level"), [(SKEW_S, logging.WARNING), (0.0, logging.INFO)])
def test_each_new_document_logs_the_clock_once_at_warning_when_corrected(
    pki: Any, caplog: pytest.LogCaptureFixture, skew_s: float, level: int
) -> None:
    keys = RecipientKeys(SoftwareNsm(pki[0], {0: PINNED}), lifetime_s=3600, clock=_skewed(skew_s))
    with caplog.at_level(logging.INFO, logger="app.enclave.recipient_keys"):
        for _ in range(3):
            keys.current()  # one document serves all three
    lines = [r for r in caplog.records if r.getMessage() == "new key pair and attestation document"]
    assert [r.levelno for r in lines] == [level]


def test_a_key_near_its_end_is_renewed_without_making_the_caller_wait(pki: Any) -> None:
    local, _ = pki
    keys = RecipientKeys(SoftwareNsm(local, {0: PINNED}), lifetime_s=RENEW_AHEAD_S)  # inside the window
    first = keys.prepare()
    assert keys.current() is first  # served at once while the successor is made
    deadline = time.monotonic() + 30
    while keys.current() is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert keys.current() is not first


def _kms_through(forwarder: Forwarder, emulator: Endpoints, max_connections: int) -> KmsClient:
    return KmsClient(forwarder.url, max_connections=max_connections, endpoint_url=emulator.https)


def _decrypt_with(kms: KmsClient, pki: tuple[LocalPki, Path], ciphertext: bytes, key_id: str) -> str:
    decryptor = Decryptor(SoftwareNsm(pki[0], {0: PINNED}), kms)
    return decryptor.decrypt(_request(ciphertext, key_id)).last4


@pytest.fixture
def forwarder(emulator: Endpoints, pki: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Forwarder]:
    monkeypatch.setenv("AWS_CA_BUNDLE", str(pki[1] / TLS_CA_FILE))
    stand_in = Forwarder(int(emulator.https.rsplit(":", 1)[1]))
    yield stand_in
    stand_in.close()


def test_one_tls_connection_serves_call_after_call(
    pki: Any, emulator: Endpoints, key_id: str, forwarder: Forwarder
) -> None:
    kms = _kms_through(forwarder, emulator, 4)
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    assert [_decrypt_with(kms, pki, ciphertext, key_id) for _ in range(5)] == ["1111"] * 5
    assert forwarder.accepted == 1


def test_concurrent_calls_never_hold_more_connections_than_the_bound(
    pki: Any, emulator: Endpoints, key_id: str, forwarder: Forwarder
) -> None:
    kms = _kms_through(forwarder, emulator, 3)
    decryptor = Decryptor(SoftwareNsm(pki[0], {0: PINNED}), kms)
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: decryptor.decrypt(_request(ciphertext, key_id)).last4, range(36)))
    assert answers == ["1111"] * 36
    assert forwarder.most_open <= 3
    assert kms.open_connections <= 3


def test_a_connection_closed_while_idle_is_replaced_without_failing_the_call(
    pki: Any, emulator: Endpoints, key_id: str, forwarder: Forwarder
) -> None:
    kms = _kms_through(forwarder, emulator, 1)
    ciphertext = _encrypt(emulator, key_id, b"4111111111111111")
    assert _decrypt_with(kms, pki, ciphertext, key_id) == "1111"
    forwarder.drop_all()
    assert _decrypt_with(kms, pki, ciphertext, key_id) == "1111"
    assert forwarder.accepted == 2


def test_a_certificate_for_another_host_name_is_refused(
    pki: Any, emulator: Endpoints, key_id: str, forwarder: Forwarder
) -> None:
    other_name = emulator.https.replace("localhost", "127.0.0.1")  # the certificate names localhost only
    kms = KmsClient(forwarder.url, max_connections=1, endpoint_url=other_name)
    with pytest.raises(DecryptError) as caught:
        _decrypt_with(kms, pki, _encrypt(emulator, key_id, b"4111111111111111"), key_id)
    assert caught.value.code is ErrorCode.KMS_UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value) or "certificate" in str(caught.value).lower()


def _verifier(pki: Any, emulator: Endpoints, key_id: str) -> ResultVerifier:
    arn = local_client("kms", emulator.http).describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    return ResultVerifier(
        root_certificate_der=pki[0].root_certificate_der, pinned_pcr0=[PINNED.hex()],
        pinned_key_arn=arn, fixed_context=deployment.ENCRYPTION_CONTEXT,
    )  # fmt: skip


def test_an_answer_is_signed_over_the_card_id_the_message_id_and_the_last_four(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = dataclasses.replace(
        _request(_encrypt(emulator, key_id, b"4111111111111111"), key_id), message_id="m-1"
    )
    result = _decryptor(pki, emulator, monkeypatch).decrypt(request)
    signed = SignedFields("c-1", "m-1", "ok", result.last4, None)
    sent = result_proof.sha256_hex(request.ciphertext)
    assert _verifier(pki, emulator, key_id).verify(signed, result.proof, ciphertext_sha256=sent).verified
    assert (
        not _verifier(pki, emulator, key_id)
        .verify(dataclasses.replace(signed, last4="4242"), result.proof)
        .verified
    )


def test_an_answer_kms_gave_under_the_callers_own_key_is_unverified(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root on a host (or anyone with the EIF) names their own key: a Luhn-valid number of their choice
    under the victim's card id. The enclave answers and signs, but KMS's KeyId is theirs."""
    own_key, _ = create_key(local_client("kms", emulator.http, principal=ADMINISTRATOR), [PINNED.hex()])
    ciphertext = _encrypt(emulator, own_key, b"4242424242424242")
    request = dataclasses.replace(_request(ciphertext, own_key), message_id="m-3")
    result = _decryptor(pki, emulator, monkeypatch).decrypt(request)
    assert result.last4 == "4242"
    signed = SignedFields("c-1", "m-3", "ok", "4242", None)
    verdict = _verifier(pki, emulator, key_id).verify(signed, result.proof)
    assert not verdict.verified
    assert "not the pinned key" in verdict.reason


def test_a_refusal_kms_never_accepted_is_signed_as_such_and_unverified(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = dataclasses.replace(_request(b"garbage" * 20, key_id), message_id="m-4")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(request)
    assert caught.value.proof is not None
    assert caught.value.proof["kms_key_arn"] is None
    signed = SignedFields("c-1", "m-4", "rejected", None, caught.value.code.value)
    verdict = _verifier(pki, emulator, key_id).verify(signed, caught.value.proof)
    assert verdict.reason == result_proof.NOT_AUTHENTICATED_BY_KMS


def test_a_refusal_is_signed_with_its_error_code(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ciphertext = _encrypt(emulator, key_id, b"4111111111111112")  # not a card: the Luhn digit is wrong
    request = dataclasses.replace(_request(ciphertext, key_id), message_id="m-2")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(request)
    assert caught.value.code is ErrorCode.NOT_A_CARD
    signed = SignedFields("c-1", "m-2", "rejected", None, "not_a_card")
    assert _verifier(pki, emulator, key_id).verify(signed, caught.value.proof).verified

"""The enclave's decrypt path end to end in one process: software NSM → KMS client → TLS emulator.

Exercises the real KMS client (TLS with hostname check over the egress link, SigV4, Recipient) against
moto with the Recipient behaviour of real KMS, then the CMS unwrap and card checks.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from app.enclave.decryptor import DecryptError, Decryptor
from app.enclave.kms_client import KmsClient
from app.enclave.recipient_keys import RENEW_AHEAD_S, RecipientKeys
from app.local import moto_fidelity
from app.local.emulator import Emulator, Endpoints, tls_files
from app.local.kms_enforcement import install_policy_enforcement, uninstall_policy_enforcement
from app.local.principals import ADMINISTRATOR
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, create_key, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki, SoftwareNsm
from app.shared import deployment
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
    pki: tuple[LocalPki, Path], emulator: Endpoints, monkeypatch: pytest.MonkeyPatch, pcr0: bytes = PINNED
) -> Decryptor:
    local, directory = pki
    monkeypatch.setenv("AWS_CA_BUNDLE", str(directory / TLS_CA_FILE))
    egress = f"tcp://127.0.0.1:{emulator.https.rsplit(':', 1)[1]}"
    kms = KmsClient(egress, max_connections=2, endpoint_url=emulator.https)
    return Decryptor(SoftwareNsm(local, {0: pcr0}), kms)


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

    keys = RecipientKeys(CountingNsm(), lifetime_s=3600)
    assert keys.current() is keys.current()
    assert len(calls) == 1
    expired = RecipientKeys(CountingNsm(), lifetime_s=0)
    assert expired.current() is not expired.current()


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


def _verifier(pki: Any) -> ResultVerifier:
    return ResultVerifier(root_certificate_der=pki[0].root_certificate_der, pinned_pcr0=[PINNED.hex()])


def test_an_answer_is_signed_over_the_card_id_the_message_id_and_the_last_four(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = dataclasses.replace(
        _request(_encrypt(emulator, key_id, b"4111111111111111"), key_id), message_id="m-1"
    )
    result = _decryptor(pki, emulator, monkeypatch).decrypt(request)
    signed = SignedFields("c-1", "m-1", "ok", result.last4, None)
    assert _verifier(pki).verify(signed, result.proof).verified
    assert not _verifier(pki).verify(dataclasses.replace(signed, last4="4242"), result.proof).verified


def test_a_refusal_is_signed_with_its_error_code(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ciphertext = _encrypt(emulator, key_id, b"4111111111111112")  # not a card: the Luhn digit is wrong
    request = dataclasses.replace(_request(ciphertext, key_id), message_id="m-2")
    with pytest.raises(DecryptError) as caught:
        _decryptor(pki, emulator, monkeypatch).decrypt(request)
    assert caught.value.code is ErrorCode.NOT_A_CARD
    signed = SignedFields("c-1", "m-2", "rejected", None, "not_a_card")
    assert _verifier(pki).verify(signed, caught.value.proof).verified

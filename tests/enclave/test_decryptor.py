"""The enclave's decrypt path end to end in one process: software NSM → egress proxy → TLS emulator.

Exercises the real KMS client settings (proxy, TLS with hostname check, Recipient) against moto with
the Recipient behaviour of real KMS, then the CMS unwrap and card checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.enclave.decryptor import DecryptError, Decryptor, KmsClients, KmsSettings
from app.enclave.egress import ConnectProxy, kms_allowlist
from app.enclave.recipient_keys import RecipientKeys
from app.local import kms_recipient, moto_fidelity
from app.local.emulator import Emulator, Endpoints, tls_context
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki, SoftwareNsm
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode

PINNED = bytes(range(48))
OTHER = bytes(reversed(range(48)))
CONTEXT = {"app": "test", "card_id": "c-1"}
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
    kms_recipient.install(
        kms_recipient.RecipientPolicy(local.root_certificate_der, frozenset({PINNED.hex()}))
    )
    with Emulator(tls_context(local, directory)) as endpoints:
        yield endpoints
    kms_recipient.uninstall()


@pytest.fixture(scope="module")
def key_id(emulator: Endpoints) -> str:
    return str(local_client("kms", emulator.http).create_key()["KeyMetadata"]["KeyId"])


def _encrypt(emulator: Endpoints, key_id: str, plaintext: bytes, context: dict[str, str] = CONTEXT) -> bytes:
    kms = local_client("kms", emulator.http)
    return bytes(kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)["CiphertextBlob"])


def _decryptor(
    pki: tuple[LocalPki, Path], emulator: Endpoints, monkeypatch: pytest.MonkeyPatch, pcr0: bytes = PINNED
) -> Decryptor:
    local, directory = pki
    monkeypatch.setenv("AWS_CA_BUNDLE", str(directory / TLS_CA_FILE))
    host_port = emulator.https.removeprefix("https://")
    upstream = "tcp://127.0.0.1:" + host_port.rsplit(":", 1)[1]
    proxy = ConnectProxy(upstream, kms_allowlist((host_port,))).start()
    return Decryptor(SoftwareNsm(local, {0: pcr0}), KmsClients(KmsSettings(proxy.url, emulator.https)))


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
            _request(ciphertext, key_id, {"app": "test", "card_id": "c-2"})
        )
    assert caught.value.code is ErrorCode.INVALID_CIPHERTEXT


def test_a_ciphertext_under_another_key_is_refused_as_wrong_key(
    pki: Any, emulator: Endpoints, key_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_key = str(local_client("kms", emulator.http).create_key()["KeyMetadata"]["KeyId"])
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
    proxy = ConnectProxy("tcp://127.0.0.1:1", kms_allowlist(("localhost:1",))).start()
    decryptor = Decryptor(
        SoftwareNsm(local, {0: PINNED}), KmsClients(KmsSettings(proxy.url, "https://localhost:1"))
    )
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

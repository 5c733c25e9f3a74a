"""`python -m app.parent canary` against the local stack (emulator with the key policy enforced, software
enclave): the real command, in-process, with the environment the relay reads. A refused decrypt names KMS's
answer; no output ever carries the full test number. The canary's retries while KMS propagates a change run
on an injected clock and sleep (never real time): the alias or the new key policy arrives during a wait."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from app.local.enclave import enclave_measurement
from app.local.principals import ADMINISTRATOR
from app.local.provision import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_SECRET_ACCESS_KEY,
    local_client,
    local_key_policy,
)
from app.local.stack import LocalStack, StackInfo, patched_environ
from app.parent import canary
from app.parent.__main__ import main
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.shared.protocol import Credentials, ErrorCode, Op

CARD = canary.canary_card()
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SETTINGS = canary.CanarySettings(key_id=KEY_ARN, region="us-east-1", encryption_context={"app": "x"})


ATTEMPTS = len(canary.RETRY_DELAYS_S) + 1


class FakeTime:
    """The canary's clock and sleep: a sleep advances the clock (and runs `on_sleep`), an attempt costs
    `attempt_s` (advanced by the stubs that call `attempt`)."""

    def __init__(self, on_sleep: Callable[[], None] = lambda: None, attempt_s: float = 0.0) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep
        self.attempt_s = attempt_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep()

    def attempt(self) -> None:
        self.now += self.attempt_s

    def retry(self, note: Callable[[str], None] | None = None) -> canary.Retry:
        if note is None:
            return canary.Retry(sleep=self.sleep, clock=lambda: self.now)
        return canary.Retry(sleep=self.sleep, clock=lambda: self.now, note=note)


def _admin_kms(info: StackInfo) -> Any:
    return local_client("kms", info.endpoints.http, info.resources.region, principal=ADMINISTRATOR)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with LocalStack(tmp_path_factory.mktemp("canary"), relay=False) as info:
        yield info


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    # An enclave whose measurement is not the one the key policy pins (a wrong PCR0).
    with LocalStack(tmp_path_factory.mktemp("canary-tampered"), relay=False, tamper=True) as info:
        yield info


@pytest.fixture
def rolling(tmp_path: Path) -> Iterator[StackInfo]:
    # A new image whose PCR0 the key policy does not accept yet: the test updates the policy (a roll).
    with LocalStack(tmp_path, relay=False, tamper=True) as info:
        yield info


def _canary(info: StackInfo, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with patched_environ(info.environment()):
        code = main(["canary"])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_canary_passes_with_one_line_naming_the_last_four(
    stack: StackInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _canary(stack, capsys)
    assert code == 0, err
    (line,) = out.splitlines()
    assert line.startswith(f"canary ok: this host's enclave decrypted the test card ending {CARD[-4:]}")
    assert CARD not in out + err


def test_a_wrong_pcr0_fails_the_canary_with_kms_last_answer_after_bounded_retries(
    tampered: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeTime()
    monkeypatch.setattr(canary, "RETRY", fake.retry())
    code, out, err = _canary(tampered, capsys)
    assert code == 1
    assert out == ""
    *notes, line = err.splitlines()
    # Every wait of the schedule, five minutes in all ("several minutes" of KMS propagation), then KMS's
    # last answer.
    assert fake.sleeps == list(canary.RETRY_DELAYS_S)
    assert sum(fake.sleeps) <= canary.RETRY_DEADLINE_S
    assert len(notes) == len(canary.RETRY_DELAYS_S)
    assert all("KMS may still be propagating a change" in note for note in notes)
    assert line.startswith(f"canary failed: {ErrorCode.ACCESS_DENIED.value}: ")
    assert "AccessDeniedException" in line  # KMS's own answer, as the enclave received it
    attempts = len(canary.RETRY_DELAYS_S) + 1
    assert line.endswith(f"(attempt {attempts} of {attempts}, 300 s after the first)")
    assert canary.RETRY_DEADLINE_S == sum(canary.RETRY_DELAYS_S) == 300
    assert CARD not in out + err


def test_an_encrypt_kms_refuses_names_its_answer(
    stack: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(canary, "RETRY", FakeTime().retry())
    with patched_environ(stack.environment()):
        code = main(["canary", "--key-id", _missing_key_arn(stack)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines()[-1].startswith(
        f"canary failed: {canary.ENCRYPT_REFUSED}: KMS Encrypt on this host: NotFoundException"
    )
    assert CARD not in err


def _missing_key_arn(info: StackInfo) -> str:
    """An ARN of the stack's account and region that names no key (KMS answers NotFoundException)."""
    return info.resources.key_arn.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"


class _FoundOnlyAfterAWhile:
    """The emulator's KMS, asked first for a key it does not know (as KMS answers for a key CloudFormation
    just created, before it has reached the KMS host the canary asks), then for the real one."""

    def __init__(self, kms: Any, missing: str) -> None:
        self._kms, self._missing, self.calls = kms, missing, 0

    def encrypt(self, **request: Any) -> Any:
        self.calls += 1
        return self._kms.encrypt(**{**request, "KeyId": self._missing} if self.calls == 1 else request)


def test_a_key_kms_does_not_find_at_first_passes_the_canary_after_a_wait(stack: StackInfo) -> None:
    fake, notes = FakeTime(), list[str]()
    kms = _FoundOnlyAfterAWhile(local_client("kms", stack.endpoints.http), _missing_key_arn(stack))
    settings = canary.CanarySettings(
        stack.resources.key_arn, stack.resources.region, {"app": "nitro-enclave-demo"}
    )
    client = EnclaveClient(stack.enclave_url)
    try:
        result = canary.run_canary(
            settings,
            kms=kms,
            enclave=client,
            credentials=lambda: Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY),
            retry=fake.retry(notes.append),
        )
    finally:
        client.close()
    assert (kms.calls, fake.sleeps) == (2, [canary.RETRY_DELAYS_S[0]])
    assert "NotFoundException" in notes[0]
    assert "trying again in 1 s" in notes[0]
    assert result.last4 == CARD[-4:]


def test_a_key_policy_updated_during_a_wait_passes_the_canary(
    rolling: StackInfo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A roll: CloudFormation has updated the key policy to accept the new PCR0, but the first Decrypt still
    # meets the old policy (access_denied); the second, after one wait, meets the new one.
    new_pcr0 = enclave_measurement(tamper=True).hex()

    def policy_propagates() -> None:
        policy = json.dumps(local_key_policy([new_pcr0, rolling.pin_hex]))
        _admin_kms(rolling).put_key_policy(
            KeyId=rolling.resources.key_id, PolicyName="default", Policy=policy
        )

    fake = FakeTime(on_sleep=policy_propagates)
    monkeypatch.setattr(canary, "RETRY", fake.retry())
    code, out, err = _canary(rolling, capsys)
    assert code == 0, err
    assert fake.sleeps == [canary.RETRY_DELAYS_S[0]]
    assert f"attempt 1 of {ATTEMPTS}: {ErrorCode.ACCESS_DENIED.value}: " in err
    assert out.startswith(f"canary ok: this host's enclave decrypted the test card ending {CARD[-4:]}")
    assert CARD not in out + err


class _NotFoundKms:
    """KMS Encrypt answering NotFoundException every time; each call costs the fake clock an attempt."""

    def __init__(self, fake: FakeTime, code: str = canary.KMS_NOT_FOUND) -> None:
        self.fake, self.code, self.calls = fake, code, 0

    def encrypt(self, **_: Any) -> dict[str, bytes]:
        self.calls += 1
        self.fake.attempt()
        raise ClientError({"Error": {"Code": self.code, "Message": "no such alias"}}, "Encrypt")


def test_slow_attempts_stop_the_retries_at_the_deadline() -> None:
    fake = FakeTime(attempt_s=100.0)
    kms, notes = _NotFoundKms(fake), list[str]()
    with pytest.raises(canary.CanaryError) as raised:
        canary.run_canary(
            SETTINGS,
            kms=kms,
            enclave=_WrongDigits(),
            credentials=_no_credentials,
            retry=fake.retry(notes.append),
        )
    # 100 s + wait 1 + 100 s + wait 2 + 100 s = 303 s: a third wait would end past 300 s.
    assert (kms.calls, fake.sleeps, len(notes)) == (3, [1.0, 2.0], 2)
    assert raised.value.code == canary.ENCRYPT_REFUSED
    assert raised.value.reason == (
        "KMS Encrypt on this host: NotFoundException: no such alias "
        f"(attempt 3 of {ATTEMPTS}, 303 s after the first)"
    )


@pytest.mark.parametrize("kms_code", ["AccessDeniedException", "DisabledException"])
def test_an_answer_that_is_not_propagation_fails_at_once(kms_code: str) -> None:
    fake = FakeTime()
    kms = _NotFoundKms(fake, kms_code)
    with pytest.raises(canary.CanaryError) as raised:
        canary.run_canary(
            SETTINGS, kms=kms, enclave=_WrongDigits(), credentials=_no_credentials, retry=fake.retry()
        )
    assert (kms.calls, fake.sleeps) == (1, [])
    assert raised.value.reason == f"KMS Encrypt on this host: {kms_code}: no such alias"


class _WrongDigits:
    """An enclave that answers with the wrong last four (a bug, or a different card)."""

    def call(self, op: Op, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        assert op is Op.DECRYPT
        return {"last4": "0000", "kms_ms": 1.0, "enclave_ms": 2.0}


class _Kms:
    def encrypt(self, **_: Any) -> dict[str, bytes]:
        return {"CiphertextBlob": b"blob"}


def _no_credentials() -> Credentials:
    return Credentials("a", "b")


class _SkewedOnce:
    """An enclave whose first decrypt KMS refuses for its signing time; measured again, it then works."""

    def __init__(self) -> None:
        self.calls = 0

    def call(self, op: Op, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        self.calls += 1
        if self.calls == 1:
            raise EnclaveError(ErrorCode.CLOCK_SKEW, "KMS InvalidSignatureException: Signature expired: ...")
        return {"last4": CARD[-4:], "kms_ms": 1.0, "enclave_ms": 2.0}


def test_a_clock_skew_refusal_is_tried_again_and_says_why() -> None:
    fake, notes, enclave = FakeTime(), list[str](), _SkewedOnce()
    result = canary.run_canary(
        SETTINGS, kms=_Kms(), enclave=enclave, credentials=_no_credentials, retry=fake.retry(notes.append)
    )
    assert (result.last4, enclave.calls, fake.sleeps) == (CARD[-4:], 2, [1.0])
    assert notes == [
        f"canary: attempt 1 of {ATTEMPTS}: clock_skew: "
        "KMS InvalidSignatureException: Signature expired: ...; "
        "the enclave measures its clock again with its next attestation document, trying again in 1 s"
    ]


def test_wrong_last_four_is_a_named_failure_without_the_number() -> None:
    fake = FakeTime()
    with pytest.raises(canary.CanaryError) as raised:
        canary.run_canary(
            SETTINGS, kms=_Kms(), enclave=_WrongDigits(), credentials=_no_credentials, retry=fake.retry()
        )
    assert fake.sleeps == []  # a wrong answer is not KMS propagating: no retry
    assert raised.value.code == canary.WRONG_LAST4
    assert str(raised.value) == f"wrong_last4: the enclave answered 0000, the card ends {CARD[-4:]}"
    assert CARD not in str(raised.value)


def test_the_canary_card_is_a_public_test_number() -> None:
    shipped = (Path(canary.__file__).parent.parent / "producer" / "cards.txt").read_text()
    assert CARD in shipped.splitlines()

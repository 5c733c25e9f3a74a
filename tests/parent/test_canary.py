"""`python -m app.parent canary` against the local stack (emulator with the key policy enforced, software
enclave): the real command, in-process, with the environment the relay reads. A refused decrypt names KMS's
answer; no output ever carries the full test number."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.local.stack import LocalStack, StackInfo, patched_environ
from app.parent import canary
from app.parent.__main__ import main
from app.shared.protocol import Credentials, ErrorCode, Op

CARD = canary.canary_card()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    with LocalStack(tmp_path_factory.mktemp("canary"), relay=False) as info:
        yield info


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackInfo]:
    # An enclave whose measurement is not the one the key policy pins (a wrong PCR0).
    with LocalStack(tmp_path_factory.mktemp("canary-tampered"), relay=False, tamper=True) as info:
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


def test_a_wrong_pcr0_fails_the_canary_with_kms_answer(
    tampered: StackInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _canary(tampered, capsys)
    assert code == 1
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"canary failed: {ErrorCode.ACCESS_DENIED.value}: ")
    assert "AccessDeniedException" in line  # KMS's own answer, as the enclave received it
    assert CARD not in out + err


def test_an_encrypt_kms_refuses_names_its_answer(
    stack: StackInfo, capsys: pytest.CaptureFixture[str]
) -> None:
    with patched_environ(stack.environment()):
        code = main(["canary", "--key-id", "alias/no-such-key"])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith(
        f"canary failed: {canary.ENCRYPT_REFUSED}: KMS Encrypt on this host: NotFoundException"
    )
    assert CARD not in err


class _WrongDigits:
    """An enclave that answers with the wrong last four (a bug, or a different card)."""

    def call(self, op: Op, body: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        assert op is Op.DECRYPT
        return {"last4": "0000", "kms_ms": 1.0, "enclave_ms": 2.0}


class _Kms:
    def encrypt(self, **_: Any) -> dict[str, bytes]:
        return {"CiphertextBlob": b"blob"}


def test_wrong_last_four_is_a_named_failure_without_the_number() -> None:
    settings = canary.CanarySettings(key_id="alias/k", region="us-east-1", encryption_context={"app": "x"})
    with pytest.raises(canary.CanaryError) as raised:
        canary.run_canary(
            settings, kms=_Kms(), enclave=_WrongDigits(), credentials=lambda: Credentials("a", "b")
        )
    assert raised.value.code == canary.WRONG_LAST4
    assert str(raised.value) == f"wrong_last4: the enclave answered 0000, the card ends {CARD[-4:]}"
    assert CARD not in str(raised.value)


def test_the_canary_card_is_a_public_test_number() -> None:
    shipped = (Path(canary.__file__).parent.parent / "producer" / "cards.txt").read_text()
    assert CARD in shipped.splitlines()

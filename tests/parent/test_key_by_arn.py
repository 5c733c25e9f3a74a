"""The parent's commands name the key only by its ARN: `run`, `canary` and `attest` refuse an alias or a bare
key id in KMS_KEY_ID with a usage error naming alias redirection, before any KMS, SQS or enclave call (the
queue and enclave addresses below lead nowhere: reaching them would fail differently)."""

from __future__ import annotations

import pytest

from app.parent.__main__ import main

ALIAS = "alias/nitro-enclave-demo"
BARE_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
NOWHERE = "http://127.0.0.1:9/queue"
COMMANDS = [["run"], ["canary"], ["attest"]]


@pytest.fixture(autouse=True)
def host_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("ENCLAVE_URL", "tcp://127.0.0.1:9")
    for name in ("CARDS_QUEUE_URL", "RESULTS_QUEUE_URL", "DEAD_LETTER_QUEUE_URL"):
        monkeypatch.setenv(name, NOWHERE)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_alias_is_refused_naming_alias_redirection(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMS_KEY_ID", ALIAS)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"KMS_KEY_ID is an alias ('{ALIAS}')" in err
    assert "kms:UpdateAlias" in err
    assert "alias redirection" in err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_bare_key_id_is_refused(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KMS_KEY_ID", BARE_KEY_ID)
    assert main(command) == 2
    assert "KMS_KEY_ID must be the key's full ARN" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_an_alias_given_as_an_option_is_refused(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--key-id", f"arn:aws:kms:us-east-1:111122223333:{ALIAS}"]) == 2
    assert "alias redirection" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_no_key_at_all_is_refused_there_is_no_default_alias(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KMS_KEY_ID", raising=False)
    assert main(command) == 2
    assert "KMS_KEY_ID is not set" in capsys.readouterr().err

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from app.local.provision import Provisioned
from app.producer.__main__ import main
from app.shared.cards import LAST_DIGITS_SHOWN
from app.shared.queue_messages import CardMessage, ResultMessage

CARD = "6011000990139424"


def _fake_relay(
    sqs: Any, stack: Provisioned, kms: Any, count: int, last4: str | None = None
) -> threading.Thread:
    """Decrypts like the enclave would (without attestation) and publishes the ResultMessages."""

    def relay() -> None:
        done = 0
        while done < count:
            answer = sqs.receive_message(
                QueueUrl=stack.cards_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                card = CardMessage.from_json(message["Body"])
                context = {"app": "nitro-enclave-demo", "card_id": card.card_id}
                plain = kms.decrypt(CiphertextBlob=card.ciphertext, EncryptionContext=context)["Plaintext"]
                digits = last4 or plain.decode()[-LAST_DIGITS_SHOWN:]
                result = ResultMessage(card.card_id, message["MessageId"], "ok", last4=digits)
                sqs.send_message(QueueUrl=stack.results_queue_url, MessageBody=result.to_json())
                sqs.delete_message(QueueUrl=stack.cards_queue_url, ReceiptHandle=message["ReceiptHandle"])
                done += 1

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def card_file(tmp_path: Any) -> str:
    path = tmp_path / "cards.txt"
    path.write_text(CARD + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.usefixtures("producer_env")
def test_wait_exits_0_when_every_last4_matches(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str
) -> None:
    relay = _fake_relay(sqs, stack, kms, 12)
    out = io.StringIO()
    assert main(["--count", "12", "--wait", "--timeout", "20", "--cards-file", card_file], out) == 0
    relay.join(5)
    lines = out.getvalue().splitlines()
    assert sum("************9424  ok" in line for line in lines) == 12
    assert lines[-1].startswith("12/12 ok")


@pytest.mark.usefixtures("producer_env")
def test_a_wrong_last4_exits_1(sqs: Any, kms: Any, stack: Provisioned, card_file: str) -> None:
    _fake_relay(sqs, stack, kms, 1, last4="0000").join(0)
    out = io.StringIO()
    assert main(["--count", "1", "--wait", "--timeout", "10", "--cards-file", card_file], out) == 1
    assert "MISMATCH" in out.getvalue()


@pytest.mark.usefixtures("producer_env")
def test_a_timeout_exits_1_and_says_how_many_are_missing(sqs: Any, card_file: str) -> None:
    out = io.StringIO()
    assert main(["--count", "2", "--wait", "--timeout", "1", "--cards-file", card_file], out) == 1
    assert "2 results missing" in out.getvalue()


@pytest.mark.usefixtures("producer_env")
def test_no_output_holds_a_full_number(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_relay(sqs, stack, kms, 3)
    out = io.StringIO()
    main(["--count", "3", "--wait", "--timeout", "20", "--cards-file", card_file], out)
    captured = capsys.readouterr()
    assert CARD not in out.getvalue() + captured.out + captured.err


def test_a_missing_queue_setting_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARDS_QUEUE_URL", raising=False)
    assert main(["--count", "1"]) == 2


def test_a_bad_option_exits_2() -> None:
    assert main(["--no-such-option"]) == 2

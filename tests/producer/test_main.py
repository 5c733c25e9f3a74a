from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from app.local.provision import Provisioned
from app.producer.__main__ import main
from app.producer.verification import TrustError, load_root, load_trust
from app.shared import result_proof
from app.shared.cards import LAST_DIGITS_SHOWN
from app.shared.queue_messages import CardMessage, ResultMessage
from tests.result_signing import OTHER_PCR0, SigningEnclave

CARD = "6011000990139424"
ENCLAVE = SigningEnclave()
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _fake_relay(
    sqs: Any, stack: Provisioned, kms: Any, count: int, *, last4: str | None = None, signer: Any = ENCLAVE
) -> threading.Thread:
    """Decrypts like the enclave would (without attestation) and publishes the ResultMessages, signed by
    `signer` as the enclave signs them (None: unsigned)."""

    def relay() -> None:
        done = 0
        while done < count:
            answer = sqs.receive_message(
                QueueUrl=stack.cards_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                card = CardMessage.from_json(message["Body"])
                context = {"app": "nitro-enclave-demo", "card_id": card.card_id}
                answer = kms.decrypt(CiphertextBlob=card.ciphertext, EncryptionContext=context)
                digits = last4 or answer["Plaintext"].decode()[-LAST_DIGITS_SHOWN:]
                result = ResultMessage(card.card_id, message["MessageId"], "ok", last4=digits)
                bound = {  # what the enclave signs: KMS's KeyId, the ciphertext and context hashes
                    "kms_key_arn": answer["KeyId"],
                    "ciphertext_sha256": result_proof.sha256_hex(card.ciphertext),
                    "context_sha256": result_proof.context_sha256(context),
                }
                result = result if signer is None else signer.sign(result, **bound)
                sqs.send_message(QueueUrl=stack.results_queue_url, MessageBody=result.to_json())
                sqs.delete_message(QueueUrl=stack.cards_queue_url, ReceiptHandle=message["ReceiptHandle"])
                done += 1

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    return thread


@pytest.fixture(autouse=True)
def trust_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Results are verified against the test enclave's root; its PCR0 is the pin in the key policy."""
    monkeypatch.setenv("ATTESTATION_ROOT_PEM", str(ENCLAVE.root_pem(tmp_path)))


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
    assert sum("************9424  ok" in line and " verified " in line for line in lines) == 12
    assert lines[-1].startswith("12/12 ok")
    assert lines[-1].endswith("; 12 verified, 0 UNVERIFIED")


@pytest.mark.usefixtures("producer_env")
def test_stdout_holds_the_queued_line_then_results_and_no_json(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_relay(sqs, stack, kms, 2)
    out = io.StringIO()
    assert main(["--count", "2", "--wait", "--timeout", "20", "--cards-file", card_file], out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("queued 2 encrypted cards in ")
    assert lines[0].endswith("; waiting up to 20 s for their results")
    assert lines[1].startswith("results verified against ")
    assert not [line for line in lines if line.startswith("{") or "\r" in line]
    err = capsys.readouterr().err.splitlines()  # INFO lines stay off stderr unless LOG_LEVEL asks
    assert len(err) == 1  # only the warning that the root is not AWS's (the test enclave's root)
    assert err[0].startswith("WARNING: results are verified against the root ")


@pytest.mark.usefixtures("producer_env")
def test_the_log_file_takes_the_json_lines(
    tmp_path: Any, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "producer.log"
    out = io.StringIO()
    assert main(["--count", "1", "--cards-file", card_file, "--log-file", str(log_file)], out) == 0
    (entry,) = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert (entry["msg"], entry["cards"]) == ("cards queued", 1)
    assert out.getvalue().startswith("queued 1 encrypted cards in ")
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("producer_env")
def test_a_wrong_last4_exits_1(sqs: Any, kms: Any, stack: Provisioned, card_file: str) -> None:
    _fake_relay(sqs, stack, kms, 1, last4="0000").join(0)
    out = io.StringIO()
    assert main(["--count", "1", "--wait", "--timeout", "10", "--cards-file", card_file], out) == 1
    assert "MISMATCH" in out.getvalue()
    assert "what to do: each rejected card is also on the dead-letter queue" in out.getvalue()


@pytest.mark.usefixtures("producer_env")
def test_a_timeout_exits_1_and_says_how_many_are_missing(sqs: Any, card_file: str) -> None:
    out = io.StringIO()
    assert main(["--count", "2", "--wait", "--timeout", "1", "--cards-file", card_file], out) == 1
    assert "2 results missing" in out.getvalue()
    assert "what to do: is the relay running?" in out.getvalue()


@pytest.mark.usefixtures("producer_env")
def test_no_output_holds_a_full_number(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_relay(sqs, stack, kms, 3)
    out = io.StringIO()
    main(["--count", "3", "--wait", "--timeout", "20", "--cards-file", card_file], out)
    captured = capsys.readouterr()
    assert CARD not in out.getvalue() + captured.out + captured.err


def test_a_missing_queue_setting_exits_2_and_says_where_settings_come_from(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CARDS_QUEUE_URL", raising=False)
    assert main(["--count", "1"]) == 2
    assert "what to do: on the instance run `nitro-demo send N`" in capsys.readouterr().err


def test_missing_credentials_say_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("KMS_KEY_ID", KEY_ARN)
    queue = ["--queue-url", "http://127.0.0.1:9/000000000000/cards", "--cards-file", card_file]
    assert main(["--count", "1", *queue]) == 1
    err = capsys.readouterr().err
    assert "what to do: no AWS credentials" in err


def test_an_alias_exits_2_before_any_kms_call_and_says_why(
    monkeypatch: pytest.MonkeyPatch, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a call would fail with 1
    monkeypatch.setenv("KMS_KEY_ID", "alias/nitro-enclave-demo")
    queue = ["--queue-url", "http://127.0.0.1:9/000000000000/cards", "--cards-file", card_file]
    assert main(["--count", "1", *queue]) == 2
    assert "alias redirection" in capsys.readouterr().err


def test_a_bad_option_exits_2() -> None:
    assert main(["--no-such-option"]) == 2


@pytest.mark.usefixtures("producer_env")
def test_unsigned_results_are_unverified_and_exit_1(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str
) -> None:
    _fake_relay(sqs, stack, kms, 2, signer=None)
    out = io.StringIO()
    assert main(["--count", "2", "--wait", "--timeout", "20", "--cards-file", card_file], out) == 1
    lines = out.getvalue().splitlines()
    assert sum(" UNVERIFIED " in line and "no proof" in line for line in lines) == 2
    assert "2/2 ok, 0 rejected or wrong, 0 missing" in out.getvalue()
    assert "; 0 verified, 2 UNVERIFIED" in out.getvalue()
    assert (
        "what to do: an UNVERIFIED result was not signed by an enclave running the pinned image"
        in out.getvalue()
    )


@pytest.mark.usefixtures("producer_env")
def test_results_of_another_image_are_unverified(
    sqs: Any, kms: Any, stack: Provisioned, card_file: str
) -> None:
    other = SigningEnclave(OTHER_PCR0, pki=ENCLAVE.pki)  # the same root: only the measurement differs
    _fake_relay(sqs, stack, kms, 1, signer=other)
    out = io.StringIO()
    assert main(["--count", "1", "--wait", "--timeout", "20", "--cards-file", card_file], out) == 1
    assert "not the pinned image" in out.getvalue()


@pytest.mark.usefixtures("producer_env")
def test_an_unreadable_pin_stops_before_anything_is_sent(
    sqs: Any, stack: Provisioned, card_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    missing = stack.key_arn.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    args = ["--count", "1", "--wait", "--key-id", missing, "--cards-file", card_file]
    assert main(args, out) == 1
    assert f"cannot read the pin from the key policy of {missing}" in capsys.readouterr().err
    assert sqs.receive_message(QueueUrl=stack.cards_queue_url, WaitTimeSeconds=0).get("Messages") is None


def test_a_key_policy_allowing_decrypt_without_a_pin_is_not_trusted(
    kms: Any, stack: Provisioned, tmp_path: Any
) -> None:
    """As `attest` fails on it: a statement that lets someone decrypt with no ImageSha384 condition."""
    policy = json.loads(kms.get_key_policy(KeyId=stack.key_arn, PolicyName="default")["Policy"])
    unpinned = {
        "Sid": "AllowDecryptAnywhere", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": "kms:Decrypt", "Resource": "*",
    }  # fmt: skip
    policy["Statement"].append(unpinned)
    kms.put_key_policy(KeyId=stack.key_arn, PolicyName="default", Policy=json.dumps(policy))
    try:
        with pytest.raises(TrustError, match='ImageSha384 condition in "AllowDecryptAnywhere"'):
            load_trust(root_pem=None, pinned_pcr0=None, kms=kms, key_id=stack.key_arn)
    finally:
        policy["Statement"].remove(unpinned)
        kms.put_key_policy(KeyId=stack.key_arn, PolicyName="default", Policy=json.dumps(policy))


def test_a_root_other_than_aws_is_named_in_a_loud_warning(tmp_path: Any) -> None:
    warn = io.StringIO()
    load_root(ENCLAVE.root_pem(tmp_path), warn)
    assert warn.getvalue().startswith("WARNING: results are verified against the root ")
    assert "NOT the AWS Nitro root" in warn.getvalue()
    quiet = io.StringIO()
    load_root(None, quiet)
    assert quiet.getvalue() == ""

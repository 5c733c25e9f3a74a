"""The whole local pipeline, one stack for the module: producer → SQS → relay → enclave → KMS → results."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.local import instructions
from app.local.principals import ADMINISTRATOR
from app.local.provision import create_key, local_client
from app.local.software_nsm import LocalPki
from app.local.stack import LocalStack, StackInfo
from app.producer.__main__ import main as producer_main
from app.producer.sender import SentCard, encrypt_card
from app.shared import deployment
from app.shared.queue_messages import CardMessage, ResultMessage
from tests.number_scan import leaked
from tests.poison_messages import POISON
from tests.result_signing import OTHER_PCR0, SigningEnclave

from .pipeline_helpers import clients, collect, full_numbers_in, parked_with_body, send

pytestmark = pytest.mark.slow

VISA = "4111111111111111"
AMEX = "378282246310005"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(tmp_path_factory.mktemp("pipeline"))
    with local:
        yield local


@pytest.fixture(scope="module")
def info(stack: LocalStack) -> StackInfo:
    assert stack.info is not None
    return stack.info


def test_every_card_comes_back_with_its_last_four_digits(info: StackInfo) -> None:
    collected = collect(info, send(info, [VISA, AMEX, VISA]))
    assert all(o.matches for o in collected.outcomes)
    assert len(collected.outcomes) == 3


def test_the_producer_exits_0_when_all_match(
    info: StackInfo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in info.environment().items():
        monkeypatch.setenv(name, value)
    assert producer_main(["--count", "5", "--wait", "--timeout", "60"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("5/5 ok")


def test_a_malformed_message_is_parked_with_its_error_code(info: StackInfo) -> None:
    body = '{"version": 1, "card_id": "malformed-1"}'
    clients(info)[1].send_message(QueueUrl=info.resources.cards_queue_url, MessageBody=body)
    parked = parked_with_body(info, body)
    assert (
        parked["MessageAttributes"][deployment.DLQ_ATTRIBUTE_ERROR_CODE]["StringValue"] == "malformed_message"
    )


def test_a_ciphertext_under_another_context_is_parked_as_invalid(info: StackInfo) -> None:
    kms, sqs = clients(info)
    blob = encrypt_card(kms, info.resources.key_arn, deployment.ENCRYPTION_CONTEXT, "card-a", VISA)
    body = CardMessage("card-b", blob).to_json()
    sqs.send_message(QueueUrl=info.resources.cards_queue_url, MessageBody=body)
    attributes = parked_with_body(info, body)["MessageAttributes"]
    assert attributes[deployment.DLQ_ATTRIBUTE_ERROR_CODE]["StringValue"] == "invalid_ciphertext"
    assert VISA not in json.dumps(attributes)


# The 1 MiB body is parked as a truncated copy, which `parked_with_body` cannot match by body; the relay's
# tests check that copy (tests/parent/test_relay.py).
PIPELINE_POISON = {kind: body for kind, body in POISON.items() if kind != "1 MiB body"}


@pytest.mark.parametrize("poison", PIPELINE_POISON.values(), ids=PIPELINE_POISON.keys())
def test_nine_valid_cards_and_one_poison_message(info: StackInfo, poison: str) -> None:
    sent = send(info, [VISA, AMEX, VISA] * 3)
    clients(info)[1].send_message(QueueUrl=info.resources.cards_queue_url, MessageBody=poison)
    # Within one visibility timeout: a stranded batch would come back only after it.
    collected = collect(info, sent, timeout_s=deployment.CARDS_VISIBILITY_TIMEOUT_S)
    assert collected.missing == ()
    assert all(o.matches for o in collected.outcomes)
    parked = parked_with_body(info, poison, timeout_s=deployment.CARDS_VISIBILITY_TIMEOUT_S)
    assert parked["MessageAttributes"][deployment.DLQ_ATTRIBUTE_ERROR_CODE]["StringValue"] == (
        "malformed_message"
    )


def test_a_ciphertext_under_another_key_is_parked_as_wrong_key(info: StackInfo) -> None:
    kms, sqs = clients(info)
    # Another key with the same policy and pin, made by the administrator (the role may not create keys).
    administrator = local_client("kms", info.endpoints.http, principal=ADMINISTRATOR)
    other_key, _ = create_key(administrator, [info.pin_hex])
    blob = encrypt_card(kms, other_key, deployment.ENCRYPTION_CONTEXT, "other-key-1", VISA)
    body = CardMessage("other-key-1", blob).to_json()
    sqs.send_message(QueueUrl=info.resources.cards_queue_url, MessageBody=body)
    attributes = parked_with_body(info, body)["MessageAttributes"]
    assert attributes[deployment.DLQ_ATTRIBUTE_ERROR_CODE]["StringValue"] == "wrong_key"
    assert VISA not in json.dumps(attributes)


def _run_recipe(info: StackInfo) -> str:
    """Do what the printed AWS CLI lines do, with boto3 (the CLI may not be installed)."""
    card_line, encrypt_line, send_line, _ = instructions.cli_recipe(info, card_id="hand-1")
    pattern = re.search(r"grep -m1 -E -x '(.+?)' (\S+)\)", card_line)
    assert pattern is not None
    lines = Path(shlex.split(pattern.group(2))[0]).read_text().splitlines()
    card = next(line for line in lines if re.fullmatch(pattern.group(1).replace("{{", "{"), line))
    encrypt = shlex.split(encrypt_line.removeprefix("CIPHERTEXT=$(").removesuffix(")"))
    context = dict(pair.split("=") for pair in encrypt[encrypt.index("--encryption-context") + 1].split(","))
    kms, sqs = clients(info)
    key_id = encrypt[encrypt.index("--key-id") + 1]
    assert key_id == "$KMS_KEY_ID"  # the exported variable: the key's ARN, never the alias
    blob = kms.encrypt(
        KeyId=info.environment()["KMS_KEY_ID"], Plaintext=card.encode(), EncryptionContext=context
    )
    ciphertext = base64.b64encode(blob["CiphertextBlob"]).decode()
    send_args = shlex.split(send_line)
    body = send_args[send_args.index("--message-body") + 1].replace("$CIPHERTEXT", ciphertext)
    sqs.send_message(QueueUrl=send_args[send_args.index("--queue-url") + 1], MessageBody=body)
    return card[-4:]


def test_the_printed_aws_cli_recipe_is_processed(info: StackInfo) -> None:
    last4 = _run_recipe(info)
    (outcome,) = collect(info, [SentCard("hand-1", last4, 16, time.monotonic())]).outcomes
    assert outcome.matches


def _results_depth(info: StackInfo) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    answer = clients(info)[1].get_queue_attributes(
        QueueUrl=info.resources.results_queue_url, AttributeNames=names
    )
    return sum(int(answer["Attributes"][name]) for name in names)


def _wait_for_new_results(info: StackInfo, baseline: int) -> int:
    """How many results were published since `baseline`, as soon as there is one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (depth := _results_depth(info)) > baseline:
            return depth - baseline
        time.sleep(0.02)
    raise AssertionError("no result before the kill")


def test_killing_the_enclave_mid_stream_loses_nothing(stack: LocalStack, info: StackInfo) -> None:
    stack.stop_relay()  # queue everything first, so the kill cannot come after the last card
    sent = send(info, [VISA, AMEX] * 150)  # enough that the pipeline is still busy when the kill comes
    baseline = _results_depth(info)  # results other tests left for card ids nobody waits for
    stack.start_relay()
    done_before_kill = _wait_for_new_results(info, baseline)
    stack.kill_enclave()
    time.sleep(1)
    stack.start_enclave()
    collected = collect(info, sent, timeout_s=60)
    assert 0 < done_before_kill < len(sent)  # the kill really happened mid-stream
    assert collected.missing == ()
    assert all(o.matches for o in collected.outcomes)


def test_an_enclave_with_another_measurement_is_refused(stack: LocalStack, info: StackInfo) -> None:
    stack.start_enclave(tamper=True)
    try:
        (outcome,) = collect(info, send(info, [AMEX])).outcomes
    finally:
        stack.start_enclave()
    assert (outcome.result.status, outcome.result.error_code) == ("rejected", "access_denied")
    message = outcome.result.error_message or ""
    assert "with an explicit deny in a resource-based policy" in message
    assert 'denied by statement "DenyDecryptOutsideThePinnedEnclave"' in message


def test_no_log_of_the_run_holds_a_full_number(info: StackInfo) -> None:
    logs = sorted(info.run_dir.glob("*.log"))
    assert {p.name for p in logs} >= {"emulator.stderr.log", "enclave.stderr.log", "relay.stderr.log"}
    assert full_numbers_in(logs) == []


def _number_forms(number: str) -> list[str]:
    """The card number as card ids in the forms the product's own rule missed, each tagged to be found."""
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    full_width = "".join(chr(0xFF10 + int(d)) for d in number)
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in number)
    forms = [
        "+".join(groups),
        "|".join(groups),
        ",".join(groups),
        "\t".join(groups),
        full_width,
        arabic_indic,
    ]
    return [f"leak{i}x {form}" for i, form in enumerate(forms)]


def _every_message(info: StackInfo, queue_url: str) -> list[dict[str, Any]]:
    """Every message on the queue, paged through with a short visibility timeout (each back on the queue
    5 s later, for other readers), with its attributes."""
    sqs = clients(info)[1]
    seen: dict[str, dict[str, Any]] = {}
    while True:
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
            AttributeNames=["All"], VisibilityTimeout=5, WaitTimeSeconds=0,
        )  # fmt: skip
        messages = answer.get("Messages", [])
        if not messages:
            return list(seen.values())
        seen.update((message["MessageId"], message) for message in messages)


def test_a_card_number_as_card_id_in_any_form_leaks_into_no_file_and_no_queue(info: StackInfo) -> None:
    """Through the whole local stack: every file the run writes, the dead-letter copies and the results
    are scanned by the tests' own wide scan (`tests.number_scan`), not the product's rule."""
    sqs = clients(info)[1]
    forms = _number_forms(VISA)
    for form in forms:  # raw UTF-8 and JSON-escaped bodies alike
        for ensure_ascii in (True, False):
            body = json.dumps(
                {"version": 1, "card_id": form, "ciphertext": "AAAA"}, ensure_ascii=ensure_ascii
            )
            sqs.send_message(QueueUrl=info.resources.cards_queue_url, MessageBody=body)
    deadline = time.monotonic() + 60
    parked: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        parked = [
            m for m in _every_message(info, info.resources.dead_letter_queue_url) if "leak" in m["Body"]
        ]
        if len(parked) >= 2 * len(forms):
            break
        time.sleep(5.5)  # the paged messages are visible again
    assert len(parked) == 2 * len(forms)
    results = _every_message(info, info.resources.results_queue_url)
    texts = [json.dumps(m) for m in parked + results]
    assert leaked([VISA], "\n".join(json.dumps({"card_id": f}) for f in forms)) == ["...1111"]  # scan sees
    files = [path for path in info.run_dir.rglob("*") if path.is_file()]
    assert full_numbers_in(files, texts) == []


def _real_result(info: StackInfo) -> ResultMessage:
    """A result the stack's enclave signed (the relay passed its proof on)."""
    (outcome,) = collect(info, send(info, [VISA])).outcomes
    assert outcome.result.proof is not None
    return outcome.result


def _forgeries(info: StackInfo, real: ResultMessage, card_ids: list[str]) -> list[ResultMessage]:
    """For three card ids: the real result re-addressed to it (tampered card_id), one signed by an enclave
    of another image under the stack's own root, and one made from scratch."""
    other_image = SigningEnclave(OTHER_PCR0, pki=LocalPki.load(info.run_dir / "pki"))
    tampered = dataclasses.replace(real, card_id=card_ids[0])
    other = other_image.sign(ResultMessage(card_ids[1], "m-other", "ok", last4="1111"))
    scratch = ResultMessage(card_ids[2], "m-scratch", "ok", last4="1111")
    return [tampered, other, scratch]


def _through_the_results_queue(info: StackInfo, results: list[ResultMessage]) -> list[str]:
    """Post each result on the real results queue and read the bodies back as a consumer gets them."""
    sqs = clients(info)[1]
    queue = info.resources.results_queue_url
    posted = [result.to_json() for result in results]
    for body in posted:
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    received: list[str] = []
    deadline = time.monotonic() + 30
    while len(received) < len(posted) and time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            if message["Body"] in posted:  # others are left for their own readers
                received.append(message["Body"])
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    assert sorted(received) == sorted(posted)
    return posted


def test_verify_marks_forged_and_tampered_results_from_the_queue_unverified(
    info: StackInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in info.environment().items():
        monkeypatch.setenv(name, value)
    real = _real_result(info)
    tampered = [
        dataclasses.replace(real, card_id="someone-else"),
        dataclasses.replace(real, status="rejected"),
        dataclasses.replace(real, last4="0000"),
        dataclasses.replace(real, error_code="not_a_card"),
    ]
    retargeted = dataclasses.replace(real, message_id="m-retargeted")  # a signed field, and the queue key
    forged = _forgeries(info, real, ["forged-1", "forged-2", "forged-3"])
    bodies = _through_the_results_queue(info, [real, retargeted, *forged, *tampered])
    out = io.StringIO()
    assert producer_main(["verify"], out, io.StringIO("\n".join(bodies) + "\n")) == 1
    lines = out.getvalue().splitlines()
    verdicts = [line.split()[2] for line in lines if line.startswith("line ")]
    assert verdicts == ["verified"] + ["UNVERIFIED"] * 8
    assert lines[-1] == "1 verified, 8 UNVERIFIED"
    alone = io.StringIO()
    assert producer_main(["verify"], alone, io.StringIO(bodies[0] + "\n")) == 0


def test_wait_marks_forged_results_for_its_own_cards_unverified(
    stack: LocalStack, info: StackInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in info.environment().items():
        monkeypatch.setenv(name, value)
    real = _real_result(info)
    stack.stop_relay()  # an attacker answers these cards instead of the enclave
    out = io.StringIO()
    try:
        producer = threading.Thread(
            target=lambda: out.write(
                f"exit {producer_main(['--count', '3', '--wait', '--timeout', '30'], out)}"
            )
        )
        producer.start()
        taken = _take_cards(info, 3)
        sqs = clients(info)[1]
        for result in _forgeries(info, real, [card.card_id for card, _ in taken]):
            sqs.send_message(QueueUrl=info.resources.results_queue_url, MessageBody=result.to_json())
        for _, handle in taken:
            sqs.delete_message(QueueUrl=info.resources.cards_queue_url, ReceiptHandle=handle)
        producer.join(60)
    finally:
        stack.start_relay()
    text = out.getvalue()
    assert text.endswith("exit 1")
    assert sum(" UNVERIFIED  card_id=" in line for line in text.splitlines()) == 3
    assert "; 0 verified, 3 UNVERIFIED" in text


def _take_cards(info: StackInfo, count: int) -> list[tuple[CardMessage, str]]:
    sqs = clients(info)[1]
    taken: list[tuple[CardMessage, str]] = []
    deadline = time.monotonic() + 30
    while len(taken) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=info.resources.cards_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        taken += [(CardMessage.from_json(m["Body"]), m["ReceiptHandle"]) for m in answer.get("Messages", [])]
    assert len(taken) == count
    return taken

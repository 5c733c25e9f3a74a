"""The demo's last act: a shell on the parent, holding the relay's own credentials, takes a card the
producer just queued and calls kms:Decrypt on it without an attestation; the key policy must refuse.

Prints KMS's refusal and the key policy statement that decided it; never prints a plaintext (if Decrypt
ever succeeded, the answer's Plaintext is dropped unread). Local mode only.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from app.local.stack import LocalStack, StackInfo, patched_environ
from app.producer.__main__ import main as producer_main
from app.shared import settings
from app.shared.queue_messages import CardMessage, MalformedMessage, encryption_context

ACCESS_DENIED = "AccessDeniedException"
_DECIDED_BY = re.compile(r'statement "([^"]+)"')
RECEIVE_WAIT_S = 5


def parent_decrypt_refused(stack: LocalStack, info: StackInfo, out: IO[str] = sys.stdout) -> bool:
    """True only if KMS refused the parent's own Decrypt with AccessDeniedException."""
    environment = info.environment()
    stack.stop_relay()  # the relay would take the card first; the parent takes it instead
    with patched_environ(environment):
        if producer_main(["--count", "1"]) != 0:
            print("parent refusal check: the producer could not queue its card", file=out, flush=True)
            return False
    session = boto3.session.Session(
        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],  # the relay's credentials: the instance role
        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        region_name=info.resources.region,
    )
    card = _take_card(session, info)
    if card is None:
        print("parent refusal check: no card on the queue to try", file=out, flush=True)
        return False
    print(
        f"\nthe parent tries it itself: kms:Decrypt of card_id={card.card_id} with the relay's own "
        "credentials and no attestation",
        flush=True,
        file=out,
    )
    return decrypt_refused(session.client("kms", endpoint_url=info.endpoints.http), card, out)


def _take_card(session: boto3.session.Session, info: StackInfo) -> CardMessage | None:
    sqs = session.client("sqs", endpoint_url=info.endpoints.http)
    answer = sqs.receive_message(
        QueueUrl=info.resources.cards_queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=RECEIVE_WAIT_S
    )
    for message in answer.get("Messages", []):
        try:
            return CardMessage.from_json(message["Body"])
        except MalformedMessage:
            return None
    return None


def decrypt_refused(kms: Any, card: CardMessage, out: IO[str]) -> bool:
    """Call Decrypt without Recipient; print KMS's answer; True only for an AccessDeniedException that a
    key policy statement decided (the emulator names it)."""
    context = encryption_context(dict(settings.DEFAULT_ENCRYPTION_CONTEXT), card.card_id)
    try:
        kms.decrypt(CiphertextBlob=card.ciphertext, EncryptionContext=context)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        print(f"KMS refused: {code}: {message}", file=out, flush=True)
        if code != ACCESS_DENIED:
            print("parent refusal check FAILED: expected AccessDeniedException", file=out, flush=True)
            return False
        found = _DECIDED_BY.search(message)
        if found is None:  # e.g. a ciphertext naming no key: refused, but not by the key policy
            print("parent refusal check FAILED: no key policy statement decided it", file=out, flush=True)
            return False
        print(f"the key policy statement that denied it: {found[1]}", file=out, flush=True)
        return True
    except BotoCoreError as error:
        print(f"parent refusal check FAILED: {type(error).__name__}: {error}", file=out, flush=True)
        return False
    print("SECURITY FAILURE: the parent decrypted a card without an attestation", file=out, flush=True)
    return False

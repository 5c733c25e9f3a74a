"""Where moto 5.2.5 behaves unlike the real services under load, and the patches that make it behave.

1. SQS deletes are atomic. moto's `Queue.delete_message` rebuilds the message list and assigns it back
   without a lock (moto/sqs/models.py), so two concurrent deletes can resurrect a message the other
   removed, and an append racing the rebuild is lost. Real SQS never does either. We remove in place,
   under the queue's own message lock (the one `add_message` takes).
2. SQS receives are atomic. moto's `SQSBackend.receive_message` checks that a message is visible and
   then marks it received, with no lock between, so two concurrent receivers can both get it (seen here:
   6 duplicate results in 10,000 cards, the two copies received 0.5 s apart with receive counts 1 and 2).
   We hold the queue's message lock for the call; its long-poll wait releases that lock while waiting.
3. KMS Decrypt with a `KeyId` that does not match the ciphertext's key answers IncorrectKeyException, as
   the KMS API reference documents for Decrypt ("The KeyId in a Decrypt request ... must identify the
   same KMS key that was used to encrypt the ciphertext"); moto answers AccessDeniedException.

Local mode only; `install()` is idempotent and process-wide.
"""

from __future__ import annotations

from typing import Any

INCORRECT_KEY = "IncorrectKeyException"
INCORRECT_KEY_MESSAGE = (
    "The key ID in the request does not identify the KMS key that encrypted the ciphertext."
)
_installed: set[str] = set()


def install() -> None:
    atomic_sqs_deletes()
    atomic_sqs_receives()
    decrypt_checks_key_id()


def atomic_sqs_receives() -> None:
    from moto.sqs.models import SQSBackend  # noqa: PLC0415 - local-mode-only dependency

    if "sqs-receive" in _installed:
        return
    _installed.add("sqs-receive")
    original = SQSBackend.receive_message

    def receive_message(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with self.get_queue(queue_name)._messages_lock:  # a Condition over an RLock: waits release it
            return original(self, queue_name, *args, **kwargs)

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]


def atomic_sqs_deletes() -> None:
    from moto.sqs.exceptions import ReceiptHandleIsInvalid  # noqa: PLC0415 - local-mode-only dependency
    from moto.sqs.models import Queue  # noqa: PLC0415

    if "sqs-delete" in _installed:
        return
    _installed.add("sqs-delete")

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            if receipt_handle in self.deleted_messages:
                return  # deleting twice succeeds, as in SQS
            doomed = [m for m in self._messages if m.had_receipt_handle(receipt_handle)]
            if not doomed:
                raise ReceiptHandleIsInvalid()
            for message in doomed:
                self._messages.remove(message)
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)

    Queue.delete_message = delete_message  # type: ignore[method-assign]


def decrypt_checks_key_id() -> None:
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - local-mode-only dependency
    from moto.kms.models import KmsBackend  # noqa: PLC0415

    if "kms-key-id" in _installed:
        return
    _installed.add("kms-key-id")
    original = KmsBackend.decrypt

    def decrypt(
        self: Any, ciphertext_blob: bytes, encryption_context: dict[str, str], key_id: str | None = None
    ) -> tuple[bytes, str]:
        plaintext, arn = original(self, ciphertext_blob, encryption_context)
        if key_id is not None and self.any_id_to_key_id(key_id) != self.any_id_to_key_id(arn):
            raise JsonRESTError(INCORRECT_KEY, INCORRECT_KEY_MESSAGE)
        return plaintext, arn

    KmsBackend.decrypt = decrypt  # type: ignore[method-assign]

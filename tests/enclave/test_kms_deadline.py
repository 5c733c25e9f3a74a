"""The enclave's KMS call ends within its deadline whatever the peer does, and that deadline is shorter than
the relay's request timeout (app/shared/deployment.py KMS_CALL_DEADLINE_S says why)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from app.enclave.kms_client import Decrypted, KmsClient, KmsUnreachable, Recipient
from app.parent.enclave_client import REQUEST_TIMEOUT_S
from app.shared import deployment
from app.shared.protocol import Credentials

CREDS = Credentials("AKIDEXAMPLE", "secret", None)


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """Accepts TCP connections and never says a word (no TLS handshake, no answer)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()


def _decrypt(kms: KmsClient) -> Decrypted:
    return kms.decrypt(
        region="us-east-1", credentials=CREDS, key_id="alias/x", ciphertext=b"c",
        encryption_context={"app": "x"}, recipient=Recipient('{"AttestationDocument":"AA=="}'),
    )  # fmt: skip


def test_a_peer_that_never_answers_ends_in_kms_unavailable_within_the_deadline(silent_peer: str) -> None:
    kms = KmsClient(silent_peer, max_connections=1, endpoint_url="https://localhost:1", call_deadline_s=0.3)
    with pytest.raises(KmsUnreachable):
        _decrypt(kms)
    assert kms.open_connections == 0  # the timed-out connection gave its slot back


def test_a_caller_waiting_for_a_busy_connection_gives_up_at_the_deadline(silent_peer: str) -> None:
    kms = KmsClient(silent_peer, max_connections=1, endpoint_url="https://localhost:1", call_deadline_s=0.3)
    outcomes: list[BaseException] = []

    def call() -> None:
        try:
            _decrypt(kms)
        except KmsUnreachable as error:
            outcomes.append(error)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 3


def test_the_kms_deadline_fits_inside_the_relays_request_timeout() -> None:
    # What the enclave needs besides KMS (unwrap, framing) is milliseconds; leave whole seconds.
    assert deployment.KMS_CALL_DEADLINE_S + 2 <= REQUEST_TIMEOUT_S

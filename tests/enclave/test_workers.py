"""The enclave's worker processes: each answers with its own attestation, a dead one is replaced (its
requests in flight fail as retryable), and SIGTERM drains them all. Real processes, TCP for vsock."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.enclave import workers
from app.local import processes
from app.local.processes import Child, ChildSpec
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from app.local.software_nsm import LocalPki
from app.local.stack import LocalStack
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.parent.enclave_pool import EnclavePool
from app.shared import attestation, deployment, protocol
from app.shared.protocol import Credentials, DecryptRequest, ErrorCode, Op

from .kms_stand_in import HeldKms

pytestmark = pytest.mark.slow

CREDS = Credentials(LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY)
KEY_ALIAS = deployment.KEY_ALIAS
CONNECT_ATTEMPTS = 60  # the kernel picks the worker for each connection; this many finds every one


def _decrypt_body(ciphertext: bytes, card_id: str = "w-1") -> dict[str, Any]:
    context = {**deployment.ENCRYPTION_CONTEXT, "card_id": card_id}
    return protocol.decrypt_body(DecryptRequest(ciphertext, context, "us-east-1", CREDS, KEY_ALIAS))


def _one_client_per_worker(url: str, count: int) -> dict[int, EnclaveClient]:
    clients: dict[int, EnclaveClient] = {}
    for _ in range(CONNECT_ATTEMPTS):
        client = EnclaveClient(url)
        worker = int(client.call(Op.PING)["worker"])
        if worker in clients:
            client.close()
        else:
            clients[worker] = client
        if len(clients) == count:
            break
    return clients


def test_every_worker_has_its_own_attestation_and_decrypts(tmp_path: Path) -> None:
    with LocalStack(tmp_path, relay=False) as info:
        root = LocalPki.load(tmp_path / "pki").root_certificate_der
        count = workers.default_count()
        clients = _one_client_per_worker(info.enclave_url, count)
        assert sorted(clients) == list(range(count))
        kms = local_client("kms", info.endpoints.http)
        context = {**deployment.ENCRYPTION_CONTEXT, "card_id": "w-1"}
        blob = kms.encrypt(
            KeyId=info.resources.key_arn, Plaintext=b"4111111111111111", EncryptionContext=context
        )
        pids = set()
        for worker, client in clients.items():
            nonce = secrets.token_bytes(32)
            document = protocol.parse_attest_result(client.call(Op.ATTEST, protocol.attest_body(nonce)))
            verified = attestation.verify_document(document, root_certificate_der=root, expected_nonce=nonce)
            assert verified.pcrs[0].hex() == info.pin_hex, worker
            # The emulator checks this worker's recipient document (signature, chain, age, PCR0 pin).
            answer = client.call(Op.DECRYPT, _decrypt_body(bytes(blob["CiphertextBlob"])))
            assert answer["last4"] == "1111"
            pids.add(client.call(Op.PING)["pid"])
            client.close()
        assert len(pids) == count


@pytest.fixture
def held_kms(tmp_path: Path) -> Iterator[tuple[HeldKms, Path]]:
    pki = LocalPki.generate()
    pki.save(tmp_path / "pki")
    held = HeldKms(pki, tmp_path)
    yield held, tmp_path
    held.close()


@pytest.fixture
def enclave(held_kms: tuple[HeldKms, Path]) -> Iterator[tuple[Child, str, HeldKms]]:
    held, run_dir = held_kms
    url = f"tcp://127.0.0.1:{processes.free_port()}"
    args = (
        "--listen", url, "--pki", str(run_dir / "pki"), "--kms-endpoint", f"https://localhost:{held.port}",
        "--egress", f"tcp://127.0.0.1:{held.port}", "--log-url", "off", "--workers", "2",
    )  # fmt: skip
    child = processes.start(ChildSpec("enclave", "app.local.enclave", args), run_dir)
    processes.wait_ready(child, lambda _c: _answers_ping(url))
    processes.wait_ready(child, lambda _c: _every_worker_answers(url, 2))
    yield child, url, held
    held.released.set()
    child.stop()


def _every_worker_answers(url: str, count: int) -> bool:
    clients = _one_client_per_worker(url, count)
    for client in clients.values():
        client.close()
    return len(clients) == count


def _answers_ping(url: str) -> bool:
    client = EnclaveClient(url, request_timeout_s=2)
    try:
        client.call(Op.PING)
    except EnclaveError:
        return False
    finally:
        client.close()
    return True


def test_a_dead_worker_fails_its_requests_as_retryable_and_is_replaced(
    enclave: tuple[Child, str, HeldKms],
) -> None:
    _, url, held = enclave
    client = EnclaveClient(url)
    identity = client.call(Op.PING)
    pending = [client.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, f"w-{n}")) for n in range(3)]
    assert held.wait_pending(3)
    os.kill(int(identity["pid"]), signal.SIGKILL)
    for request_id, future in pending:
        with pytest.raises(EnclaveError) as caught:
            client.wait(request_id, future, time.monotonic() + 30)
        assert caught.value.code is ErrorCode.ENCLAVE_UNAVAILABLE
        assert caught.value.retryable
    client.close()
    deadline = time.monotonic() + 60
    replaced = False
    while not replaced and time.monotonic() < deadline:
        seen = _one_client_per_worker(url, 2)
        replaced = (
            identity["worker"] in seen and seen[identity["worker"]].call(Op.PING)["pid"] != identity["pid"]
        )
        for other in seen.values():
            other.close()
    assert replaced


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(enclave: tuple[Child, str, HeldKms]) -> None:
    child, url, held = enclave
    client = EnclaveClient(url)
    pending = [client.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, f"w-{n}")) for n in range(3)]
    assert held.wait_pending(3)
    child.process.send_signal(signal.SIGTERM)
    held.released.set()
    for request_id, future in pending:
        with pytest.raises(EnclaveError) as caught:
            client.wait(request_id, future, time.monotonic() + 30)
        assert caught.value.code is ErrorCode.KMS_THROTTLED  # KMS's answer, delivered: not a dropped link
    client.close()
    assert child.process.wait(timeout=60) == 0
    assert not _answers_ping(url)


def test_ctrl_c_at_a_terminal_drains_like_sigterm(enclave: tuple[Child, str, HeldKms]) -> None:
    """A terminal's Ctrl-C sends SIGINT to the whole foreground process group; the supervisor then passes
    SIGTERM on. Workers in the supervisor's group would see two signals and exit without draining."""
    child, url, held = enclave
    client = EnclaveClient(url)
    pending = [client.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, f"c-{n}")) for n in range(3)]
    assert held.wait_pending(3)
    os.killpg(os.getpgid(child.process.pid), signal.SIGINT)  # the child has a session of its own
    held.released.set()
    for request_id, future in pending:
        with pytest.raises(EnclaveError) as caught:
            client.wait(request_id, future, time.monotonic() + 30)
        assert caught.value.code is ErrorCode.KMS_THROTTLED  # answered, not dropped
    client.close()
    assert child.process.wait(timeout=60) == 0


def test_the_workers_share_the_kms_connections_without_exceeding_them() -> None:
    for count in (1, 2, 3, 4, 8, 32):
        assert count * workers.kms_connections_per_worker(count) <= deployment.KMS_CONNECTIONS
    with pytest.raises(ValueError, match="workers must be"):
        workers.worker_count(deployment.KMS_CONNECTIONS + 1)


def test_the_relays_pool_holds_a_connection_to_every_worker(enclave: tuple[Child, str, HeldKms]) -> None:
    _, url, held = enclave
    pool = EnclavePool(url)
    pending = [pool.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, f"p-{n}")) for n in range(4)]
    assert pool.workers == [0, 1]
    assert held.wait_pending(4)
    held.released.set()
    for request_id, future in pending:
        with pytest.raises(EnclaveError) as caught:
            pool.wait(request_id, future, time.monotonic() + 30)
        assert caught.value.code is ErrorCode.KMS_THROTTLED
    pool.close()


def test_beyond_its_window_the_pool_refuses_as_busy_instead_of_piling_on(
    enclave: tuple[Child, str, HeldKms],
) -> None:
    _, url, held = enclave
    pool = EnclavePool(url, window=2, request_timeout_s=1.0)
    pending = [pool.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, f"b-{n}")) for n in range(2)]
    with pytest.raises(EnclaveError) as caught:
        pool.submit(Op.DECRYPT, _decrypt_body(b"\x01" * 64, "b-2"))
    assert caught.value.code is ErrorCode.BUSY
    assert caught.value.retryable
    assert held.wait_pending(2)
    held.released.set()
    for request_id, future in pending:
        with pytest.raises(EnclaveError):
            pool.wait(request_id, future, time.monotonic() + 30)
    pool.close()

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from app.local import processes
from app.local.processes import Child, ChildSpec
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki

PIN = "ab" * 48

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    LocalPki.generate().save(directory)
    return directory


@pytest.fixture(scope="module")
def emulator(pki_dir: Path) -> Iterator[Child]:
    spec = ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki_dir), "--pin", PIN))
    with processes.running(spec, pki_dir.parent, processes.has_ready_line) as child:
        yield child


@pytest.fixture(scope="module")
def endpoints(emulator: Child) -> dict[str, str]:
    ready: dict[str, str] = json.loads(emulator.first_line() or "{}")
    return ready


def _tls_kms(endpoint: str, pki_dir: Path) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY_ID, aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY
    )
    return session.client(
        "kms", region_name="us-east-1", endpoint_url=endpoint, verify=str(pki_dir / TLS_CA_FILE)
    )


def test_the_ready_line_names_both_endpoints(endpoints: dict[str, str]) -> None:
    assert endpoints["http"].startswith("http://127.0.0.1:")
    assert endpoints["https"].startswith("https://localhost:")


def test_plain_http_answers_sqs(endpoints: dict[str, str]) -> None:
    sqs = local_client("sqs", endpoints["http"])
    url = sqs.create_queue(QueueName="emulator-http-check")["QueueUrl"]
    assert url.endswith("/emulator-http-check")


def test_https_answers_kms_with_a_certificate_for_localhost(endpoints: dict[str, str], pki_dir: Path) -> None:
    kms = _tls_kms(endpoints["https"], pki_dir)
    assert kms.list_keys()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_both_endpoints_share_one_backend(endpoints: dict[str, str], pki_dir: Path) -> None:
    key_id = local_client("kms", endpoints["http"]).create_key()["KeyMetadata"]["KeyId"]
    assert _tls_kms(endpoints["https"], pki_dir).describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id


def test_decrypt_without_an_attestation_is_denied(endpoints: dict[str, str]) -> None:
    kms = local_client("kms", endpoints["http"])
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    with pytest.raises(ClientError) as caught:
        kms.decrypt(CiphertextBlob=blob)
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_malformed_pin_is_a_usage_error(pki_dir: Path, tmp_path: Path) -> None:
    spec = ChildSpec("bad-pin", "app.local.emulator", ("--pki", str(pki_dir), "--pin", "xyz"))
    child = processes.start(spec, tmp_path)
    assert child.process.wait(timeout=30) == 2
    assert "SHA-384" in child.stderr_path.read_text()


def test_sigterm_stops_it_with_status_0(pki_dir: Path, tmp_path: Path) -> None:
    spec = ChildSpec("short-lived", "app.local.emulator", ("--pki", str(pki_dir), "--pin", PIN))
    child = processes.start(spec, tmp_path)
    processes.wait_ready(child, processes.has_ready_line)
    child.process.send_signal(signal.SIGTERM)
    assert child.process.wait(timeout=10) == 0

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
from app.local.principals import ADMINISTRATOR
from app.local.processes import Child, ChildSpec
from app.local.provision import create_key, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki
from app.shared import deployment

PIN = "ab" * 48

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    LocalPki.generate().save(directory)
    return directory


@pytest.fixture(scope="module")
def emulator(pki_dir: Path) -> Iterator[Child]:
    spec = ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki_dir)))
    with processes.running(spec, pki_dir.parent, processes.has_ready_line) as child:
        yield child


@pytest.fixture(scope="module")
def endpoints(emulator: Child) -> dict[str, str]:
    ready: dict[str, str] = json.loads(emulator.first_line() or "{}")
    return ready


def _tls_kms(endpoint: str, pki_dir: Path) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=ADMINISTRATOR.access_key_id, aws_secret_access_key=ADMINISTRATOR.secret_access_key
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
    admin = local_client("kms", endpoints["http"], principal=ADMINISTRATOR)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    assert _tls_kms(endpoints["https"], pki_dir).describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id


def test_the_key_policy_refuses_the_roles_decrypt_without_an_attestation(endpoints: dict[str, str]) -> None:
    key_id, _ = create_key(local_client("kms", endpoints["http"], principal=ADMINISTRATOR), [PIN])
    role = local_client("kms", endpoints["http"])
    context = dict(deployment.ENCRYPTION_CONTEXT)
    blob = role.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext=context)["CiphertextBlob"]
    with pytest.raises(ClientError) as caught:
        role.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "with an explicit deny in a resource-based policy" in error["Message"]
    assert '"DenyDecryptOutsideThePinnedEnclave"' in error["Message"]


def test_an_unknown_access_key_is_refused(endpoints: dict[str, str]) -> None:
    stranger = boto3.session.Session(aws_access_key_id="AKIASTRANGER", aws_secret_access_key="x").client(
        "kms", region_name="us-east-1", endpoint_url=endpoints["http"]
    )
    with pytest.raises(ClientError) as caught:
        stranger.list_keys()
    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_sigterm_stops_it_with_status_0(pki_dir: Path, tmp_path: Path) -> None:
    spec = ChildSpec("short-lived", "app.local.emulator", ("--pki", str(pki_dir)))
    child = processes.start(spec, tmp_path)
    processes.wait_ready(child, processes.has_ready_line)
    child.process.send_signal(signal.SIGTERM)
    assert child.process.wait(timeout=10) == 0

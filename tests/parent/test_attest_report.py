"""The `attest` verdict: real AWS fixture (debug mode → attestation off) and software-signed documents."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.enclave.handler import EnclaveHandler
from app.keypolicy.document import key_policy
from app.local.software_nsm import SoftwareNsm
from app.parent import __main__ as parent_cli
from app.parent.attest_report import Pin, check, render
from app.shared import attestation, deployment
from tests.attestation_helpers import local_pki
from tests.enclave.server_helpers import running_server

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL_DOCUMENT = base64.b64decode((FIXTURES / "real_attestation.b64").read_text())
REAL_TIMESTAMP = datetime(2024, 9, 9, 19, 49, 12, 400000, tzinfo=UTC)
PCR0 = bytes(range(48))


def test_real_aws_document_verifies_at_its_time_and_reports_attestation_off() -> None:
    real_nonce = attestation.parse_document(REAL_DOCUMENT).nonce
    report = check(
        REAL_DOCUMENT,
        nonce=real_nonce,
        root_certificate_der=attestation.load_aws_nitro_root(),
        pin=Pin.given("ab" * 48),
        at=REAL_TIMESTAMP + timedelta(seconds=1),
    )
    assert report.verified
    assert report.debug_mode
    assert not report.ok
    assert "ATTESTATION OFF" in report.verdict


def test_real_aws_document_does_not_verify_today() -> None:
    report = check(
        REAL_DOCUMENT,
        nonce=None,
        root_certificate_der=attestation.load_aws_nitro_root(),
        pin=None,
        max_age_s=None,
    )
    assert not report.verified
    assert "NOT VERIFIED" in report.verdict


def _software(nonce: bytes, pcr0: bytes = PCR0, clock_offset_s: float = 0) -> tuple[bytes, bytes]:
    pki = local_pki()
    nsm = SoftwareNsm(pki, {0: pcr0}, clock=lambda: datetime.now(UTC) - timedelta(seconds=clock_offset_s))
    return nsm.attest(nonce=nonce), pki.root_certificate_der


def test_software_document_matching_the_pin() -> None:
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce)
    report = check(document, nonce=nonce, root_certificate_der=root, pin=Pin.given(PCR0.hex().upper()))
    assert report.ok
    assert "MATCH" in report.verdict
    assert PCR0.hex() in render(report, root_label="the local root")


def test_software_document_with_another_measurement_is_a_mismatch() -> None:
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce, pcr0=bytes(47) + b"\x01")
    report = check(document, nonce=nonce, root_certificate_der=root, pin=Pin.given(PCR0.hex()))
    assert report.verified
    assert not report.ok
    assert report.verdict.startswith("MISMATCH")


def test_a_replayed_document_fails_the_nonce_check() -> None:
    document, root = _software(secrets.token_bytes(32))
    report = check(
        document, nonce=secrets.token_bytes(32), root_certificate_der=root, pin=Pin.given(PCR0.hex())
    )
    assert not report.verified
    assert "NonceMismatch" in report.verdict


def test_a_stale_document_is_refused() -> None:
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce, clock_offset_s=3600)
    report = check(document, nonce=nonce, root_certificate_der=root, pin=Pin.given(PCR0.hex()))
    assert not report.verified
    assert "StaleDocument" in report.verdict


def test_attest_command_over_the_wire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = local_pki()
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    handler = EnclaveHandler(decryptor=None, nsm=SoftwareNsm(pki, {0: PCR0}))  # type: ignore[arg-type]
    with running_server(handler) as (url, _):
        code = parent_cli.main(
            ["--enclave-url", url, "attest", "--pinned-pcr0", PCR0.hex(), "--root-pem", str(root_pem)]
        )
    assert code == 0
    assert "MATCH" in capsys.readouterr().out


def _policy(*pins: str) -> dict[str, object]:
    return key_policy(
        account_root="arn:aws:iam::123456789012:root",
        role_arn="arn:aws:iam::123456789012:role/r",
        accepted_pcr0=list(pins),
        encryption_context=deployment.ENCRYPTION_CONTEXT,
    )


def test_the_pin_is_read_from_the_statement_that_allows_decrypt() -> None:
    pin = Pin.from_key_policy(_policy(PCR0.hex().upper()))
    assert pin.values == (PCR0.hex(),)
    assert pin.source == 'the key policy (statement "AttestedEnclaveDecrypts")'
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce)
    report = check(document, nonce=nonce, root_certificate_der=root, pin=pin)
    assert report.ok
    assert (
        'MATCH: this enclave\'s PCR0 is the one the key policy (statement "AttestedEnclaveDecrypts")'
        in report.verdict
    )


def test_a_debug_policy_shows_both_accepted_values_and_says_zeros_are_accepted() -> None:
    pin = Pin.from_key_policy(_policy(PCR0.hex(), "0" * 96))
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce, pcr0=bytes(48))
    report = check(document, nonce=nonce, root_certificate_der=root, pin=pin)
    assert not report.ok
    assert "this key policy ACCEPTS them" in report.verdict
    assert "0" * 96 in render(report, root_label="r")


def test_an_unconditional_decrypt_allow_is_reported_as_not_pinned() -> None:
    policy = _policy(PCR0.hex())
    policy["Statement"].append(  # type: ignore[attr-defined]
        {"Sid": "Oops", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}
    )
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce)
    report = check(document, nonce=nonce, root_certificate_der=root, pin=Pin.from_key_policy(policy))
    assert not report.ok
    assert report.verdict.startswith('KEY POLICY NOT PINNED: statement "Oops"')


def test_attest_reads_the_pin_from_the_key_policy_over_kms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    from app.local.principals import ADMINISTRATOR  # noqa: PLC0415 - local-mode helpers for the setup
    from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, create_key, local_client  # noqa: PLC0415

    region = "sa-east-1"
    _, key = create_key(local_client("kms", moto_endpoint, region, principal=ADMINISTRATOR), [PCR0.hex()])
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
    }.items():
        monkeypatch.setenv(name, value)
    pki = local_pki()
    root_pem = tmp_path / "root.pem"
    root_pem.write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    handler = EnclaveHandler(decryptor=None, nsm=SoftwareNsm(pki, {0: PCR0}))  # type: ignore[arg-type]
    with running_server(handler) as (url, _):
        code = parent_cli.main(
            ["--enclave-url", url, "attest", "--key-id", key, "--region", region, "--root-pem", str(root_pem)]
        )
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'pin read from the key policy (statement "AttestedEnclaveDecrypts")' in out
    assert "MATCH" in out

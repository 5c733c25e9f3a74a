"""The `attest` verdict: real AWS fixture (debug mode → attestation off) and software-signed documents."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from app.enclave.handler import EnclaveHandler
from app.local.software_nsm import SoftwareNsm
from app.parent import __main__ as parent_cli
from app.parent.attest_report import check, render
from app.shared import attestation
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
        pinned_pcr0="ab" * 48,
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
        pinned_pcr0=None,
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
    report = check(document, nonce=nonce, root_certificate_der=root, pinned_pcr0=PCR0.hex().upper())
    assert report.ok
    assert "MATCH" in report.verdict
    assert PCR0.hex() in render(report, root_label="the local root")


def test_software_document_with_another_measurement_is_a_mismatch() -> None:
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce, pcr0=bytes(47) + b"\x01")
    report = check(document, nonce=nonce, root_certificate_der=root, pinned_pcr0=PCR0.hex())
    assert report.verified
    assert not report.ok
    assert report.verdict.startswith("MISMATCH")


def test_a_replayed_document_fails_the_nonce_check() -> None:
    document, root = _software(secrets.token_bytes(32))
    report = check(document, nonce=secrets.token_bytes(32), root_certificate_der=root, pinned_pcr0=PCR0.hex())
    assert not report.verified
    assert "NonceMismatch" in report.verdict


def test_a_stale_document_is_refused() -> None:
    nonce = secrets.token_bytes(32)
    document, root = _software(nonce, clock_offset_s=3600)
    report = check(document, nonce=nonce, root_certificate_der=root, pinned_pcr0=PCR0.hex())
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

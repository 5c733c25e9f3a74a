"""`python -m app.parent ping` against the real enclave handler: up, and how its clock stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.enclave.clock import EnclaveClock
from app.enclave.decryptor import Decryptor
from app.enclave.handler import EnclaveHandler
from app.enclave.kms_client import KmsClient
from app.local.software_nsm import SoftwareNsm
from app.parent import __main__ as parent_cli
from tests.attestation_helpers import local_pki
from tests.enclave.server_helpers import running_server

NSM_TIME = datetime(2026, 12, 5, 7, 0, 0, tzinfo=UTC)
PCR0 = bytes(range(48))


def _ping(handler: EnclaveHandler, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with running_server(handler) as (url, _):
        code = parent_cli.main(["--enclave-url", url, "ping"])
    return code, capsys.readouterr().out


def _handler(enclave_ahead_s: float, *, prepared: bool = True) -> EnclaveHandler:
    nsm = SoftwareNsm(local_pki(), {0: PCR0}, clock=lambda: NSM_TIME)
    clock = EnclaveClock(wall=(NSM_TIME + timedelta(seconds=enclave_ahead_s)).timestamp)
    decryptor = Decryptor(nsm, KmsClient("tcp://127.0.0.1:1", max_connections=1), clock=clock)
    if prepared:
        decryptor.prepare()  # the worker's first key pair and document: the first clock reading
    return EnclaveHandler(decryptor, nsm)


def test_ping_prints_the_skew_and_that_kms_requests_use_the_nsm_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _ping(_handler(-400.0), capsys)
    assert code == 0
    assert "is up (protocol 1" in out
    assert out.rstrip().endswith(
        "clock skew -400000 ms against the NSM, KMS requests signed with the NSM's time)"
    )


def test_ping_says_no_correction_within_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _ping(_handler(0.25), capsys)
    assert code == 0
    assert out.rstrip().endswith("clock skew +250 ms against the NSM, no correction)")


def test_ping_before_any_document_says_the_clock_is_not_measured(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _ping(_handler(0.0, prepared=False), capsys)
    assert code == 0
    assert out.rstrip().endswith("clock not measured yet)")

"""`python -m app.parent ping` against the real enclave handler: up, and how its clock stands."""

from __future__ import annotations

import pytest

from app.enclave.handler import EnclaveHandler
from app.parent import __main__ as parent_cli
from tests.enclave.server_helpers import running_server, skewed_handler


def _ping(handler: EnclaveHandler, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with running_server(handler) as (url, _):
        code = parent_cli.main(["--enclave-url", url, "ping"])
    return code, capsys.readouterr().out


def test_ping_prints_the_skew_and_that_kms_requests_use_the_nsm_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = _ping(skewed_handler(-400.0), capsys)
    assert code == 0
    assert "is up (protocol 1" in out
    assert out.rstrip().endswith(
        "clock skew -400000 ms against the NSM, KMS requests signed with the NSM's time)"
    )


def test_ping_says_no_correction_within_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _ping(skewed_handler(0.25), capsys)
    assert code == 0
    assert out.rstrip().endswith("clock skew +250 ms against the NSM, no correction)")


def test_ping_before_any_document_says_the_clock_is_not_measured(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _ping(skewed_handler(0.0, prepared=False), capsys)
    assert code == 0
    assert out.rstrip().endswith("clock not measured yet)")

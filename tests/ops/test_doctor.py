"""`doctor` against recorded outputs of the real tools: one test per known failure, plus a healthy host."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from app.ops import __main__ as ops_main
from app.ops import collect, doctor, enclave_checks, host_checks
from app.ops.collect import Observations
from app.ops.findings import Finding, Status, exit_code, render_text

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def healthy() -> Observations:
    return Observations(
        device_present=True,
        describe_enclaves=fixture("describe_running.json"),
        systemctl_show=fixture("systemctl_show_healthy.txt"),
        enclave_journal=fixture("enclave_journal_healthy.txt"),
        allocator_journal=fixture("allocator_healthy.txt"),
        meminfo=fixture("meminfo_reserved.txt"),
        df=fixture("df_ok.txt"),
        chrony=fixture("chrony_ok.txt"),
        vsock_proxy_config=fixture("vsock_proxy_us_east_1.yaml"),
        eif_bytes=180 * 1024 * 1024,
        enclave_memory_mib=3072,
        enclave_cid=16,
        region="us-east-1",
        pinned_pcr0=fixture("pinned_pcr0.txt").strip().upper(),  # the pin compares case-insensitively
        enclave_ping={"status": "ok", "protocol": 1, "clock_skew_ms": 12, "clock_corrected": False},
    )


def only(findings: list[Finding], check: str) -> Finding:
    matching = [f for f in findings if f.check == check]
    assert len(matching) == 1, [f.check for f in findings]
    return matching[0]


def test_a_healthy_host_has_no_failure_and_no_warning() -> None:
    findings = doctor.diagnose(healthy())
    assert [f for f in findings if f.status is not Status.OK] == []
    assert exit_code(findings) == 0


def test_every_check_is_skipped_when_nothing_could_be_collected() -> None:
    findings = doctor.diagnose(Observations())
    assert {f.status for f in findings} == {Status.SKIP}
    assert exit_code(findings) == 0


def test_missing_device_means_no_enclave_support() -> None:
    finding = host_checks.check_device(present=False)
    assert finding.status is Status.FAIL
    assert "/dev/nitro_enclaves is missing" in finding.what
    assert "enclaves enabled" in finding.todo


def test_e27_from_run_enclave_names_the_allocator_when_the_enclave_is_down() -> None:
    obs = dataclasses.replace(
        healthy(),
        describe_enclaves=fixture("describe_empty.json"),
        enclave_journal=fixture("nitro_cli_e27.txt"),
    )
    findings = doctor.diagnose(obs)
    e27 = only(findings, "nitro-cli E27")
    assert e27.status is Status.FAIL
    assert "hugepage memory" in e27.what
    assert "3072 MB" in e27.what
    assert "nitro-enclaves-allocator" in e27.todo
    assert "cli-errors.html#E27" in e27.todo
    assert only(findings, "enclave").status is Status.FAIL


def test_an_old_e_code_is_only_a_warning_while_the_enclave_runs() -> None:
    obs = dataclasses.replace(healthy(), enclave_journal=fixture("nitro_cli_e27.txt"))
    assert only(doctor.diagnose(obs), "nitro-cli E27").status is Status.WARN


@pytest.mark.parametrize(
    ("name", "code", "words"),
    [
        ("nitro_cli_e26.txt", "E26", "4 x its size"),
        ("nitro_cli_e19.txt", "E19", "EIF missing"),
        ("nitro_cli_e36.txt", "E36", "did not boot"),
        ("nitro_cli_e39.txt", "E39", "enclave process"),
    ],
)
def test_each_recorded_nitro_cli_error_is_explained(name: str, code: str, words: str) -> None:
    [finding] = enclave_checks.check_nitro_cli_errors(fixture(name), enclave_running=False)
    assert finding.check == f"nitro-cli {code}"
    assert finding.status is Status.FAIL
    assert words in finding.what
    assert finding.todo


def test_an_unknown_e_code_still_links_to_the_docs() -> None:
    [finding] = enclave_checks.check_nitro_cli_errors("[ E58 ] Enclave naming error.", enclave_running=False)
    assert "cli-errors.html#E58" in finding.todo


def test_allocator_without_enough_memory() -> None:
    finding = host_checks.check_allocator_log(fixture("allocator_insufficient.txt"))
    assert finding.status is Status.FAIL
    assert "hugepages" in finding.what
    assert "enclave_memory_mib" in finding.todo


def test_allocator_without_the_driver() -> None:
    finding = host_checks.check_allocator_log(fixture("allocator_no_driver.txt"))
    assert finding.status is Status.FAIL
    assert "driver" in finding.what


def test_no_hugepages_reserved_predicts_e27() -> None:
    finding = host_checks.check_hugepages(fixture("meminfo_none.txt"), 3072)
    assert finding.status is Status.FAIL
    assert "E27" in finding.what


def test_hugetlb_counts_pages_of_every_size() -> None:
    meminfo = "HugePages_Total:       0\nHugepagesize:       2048 kB\nHugetlb:         3145728 kB\n"
    assert host_checks.check_hugepages(meminfo, 3072).status is Status.OK


def test_failed_services_say_which_and_where_to_look() -> None:
    findings = host_checks.check_services(fixture("systemctl_show_failed.txt"))
    by_unit = {f.check.removeprefix("service "): f for f in findings}
    proxy = by_unit["nitro-enclaves-vsock-proxy.service"]
    assert proxy.status is Status.FAIL
    assert "no CloudTrail event" in proxy.todo
    assert "PCR0" in by_unit["nitro-enclave-demo-enclave.service"].what
    assert by_unit["nitro-enclave-demo-relay.service"].status is Status.FAIL
    assert by_unit["nitro-enclave-demo-logs.service"].what == "not installed"
    assert by_unit["nitro-enclaves-allocator.service"].status is Status.OK


def test_enclave_memory_below_four_times_the_eif() -> None:
    finding = enclave_checks.check_eif_size(400 * 1024 * 1024, 1024)
    assert finding.status is Status.FAIL
    assert "1601" in finding.todo


def test_pcr0_mismatch_explains_access_denied() -> None:
    obs = dataclasses.replace(healthy(), pinned_pcr0="ab" * 48)
    finding = only(doctor.diagnose(obs), "PCR0 vs key policy pin")
    assert finding.status is Status.FAIL
    assert "access_denied" in finding.what
    assert "make deploy" in finding.todo


def test_during_a_roll_the_previous_accepted_pcr0_warns_and_names_retire_previous() -> None:
    running = fixture("pinned_pcr0.txt").strip()
    obs = dataclasses.replace(healthy(), pinned_pcr0=f"{'ab' * 48},{running}")
    finding = only(doctor.diagnose(obs), "PCR0 vs key policy pin")
    assert finding.status is Status.WARN
    assert "previous image's, still accepted" in finding.what
    assert "retire_previous=true" in finding.todo


def test_debug_mode_is_flagged_loudly() -> None:
    obs = dataclasses.replace(healthy(), describe_enclaves=fixture("describe_debug.json"))
    findings = doctor.diagnose(obs)
    assert "DEBUG MODE" in only(findings, "enclave").what
    assert only(findings, "PCR0 vs key policy pin").status is Status.WARN


def test_enclave_on_another_cid_than_the_relay_expects() -> None:
    finding = enclave_checks.check_enclave(fixture("describe_running.json"), expected_cid=17)
    assert finding.status is Status.FAIL
    assert "CID 17" in finding.what


def test_allowlist_for_another_region_means_kms_hangs() -> None:
    finding = enclave_checks.check_allowlist(fixture("vsock_proxy_eu_west_1.yaml"), "us-east-1")
    assert finding.status is Status.FAIL
    assert "kms.us-east-1.amazonaws.com:443 is not allowed" in finding.what
    assert "kms.eu-west-1.amazonaws.com:443" in finding.what


def test_disk_nearly_full_fails() -> None:
    finding = host_checks.check_disk(fixture("df_full.txt"))
    assert finding.status is Status.FAIL
    assert "out of disk" in finding.what


@pytest.mark.parametrize(
    ("name", "words"), [("chrony_unsynced.txt", "not synchronised"), ("chrony_skewed.txt", "42")]
)
def test_clock_skew_and_lost_sync(name: str, words: str) -> None:
    finding = host_checks.check_clock(fixture(name))
    assert finding.status is Status.FAIL
    assert words in finding.what


def _clock(skew_ms: int | None, corrected: bool) -> Finding:
    ping = {"status": "ok", "clock_skew_ms": skew_ms, "clock_corrected": corrected}
    return only(doctor.diagnose(dataclasses.replace(healthy(), enclave_ping=ping)), "enclave clock")


def test_an_enclave_clock_within_the_threshold_is_ok() -> None:
    finding = _clock(-1_500, corrected=False)
    assert (finding.status, finding.what) == (Status.OK, "1.500 s behind the NSM's signed time")


def test_a_corrected_enclave_clock_is_a_warning_that_says_it_is_corrected() -> None:
    finding = _clock(400_000, corrected=True)
    assert finding.status is Status.WARN
    assert (
        finding.what
        == "400.000 s ahead of the NSM's signed time; corrected: KMS requests are signed with the NSM's time"
    )
    assert "systemctl restart nitro-enclave-demo-enclave" in finding.todo
    # The host's clock does not reach the enclave (brave/nitriding#13): the advice must not claim it does.
    assert "host's clock" not in finding.todo
    assert "chrony inside the enclave on the PTP clock /dev/ptp0" in finding.todo


def test_an_enclave_clock_an_hour_off_fails_since_tls_still_uses_it() -> None:
    finding = _clock(-enclave_checks.CLOCK_SKEW_FAIL_S * 1000, corrected=True)
    assert finding.status is Status.FAIL
    assert "TLS certificate checks use the enclave's own clock" in finding.what


def test_an_enclave_clock_not_measured_yet_is_skipped() -> None:
    assert _clock(None, corrected=False).status is Status.SKIP


def test_text_report_has_a_line_per_finding_and_what_to_do() -> None:
    text = render_text([host_checks.check_device(present=False)])
    assert text.startswith("[FAIL] enclave device: ")
    assert "what to do:" in text


def test_collector_treats_a_missing_tool_as_unknown() -> None:
    assert collect.run(["no-such-tool-here", "x"]) is None


def test_collector_gives_up_on_a_hanging_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect, "COMMAND_TIMEOUT_S", 0.2)
    assert collect.run([sys.executable, "-c", "import time; time.sleep(5)"]) is None


def test_collector_keeps_the_error_text_of_a_failing_tool_when_asked() -> None:
    command = [sys.executable, "-c", "import sys; sys.stderr.write('[ E39 ] x'); sys.exit(1)"]
    assert collect.run(command) is None
    assert collect.run(command, allow_failure=True) == "[ E39 ] x"


def test_doctor_command_runs_on_a_machine_without_nitro(capsys: pytest.CaptureFixture[str]) -> None:
    code = ops_main.main(["doctor"])
    assert code in (0, 1)
    assert "enclave device" in capsys.readouterr().out

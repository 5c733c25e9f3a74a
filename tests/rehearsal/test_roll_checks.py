"""The rehearsal's own checks for the host life cycle, on real files without a rehearsal: the two
reversions put the old forms back, the agent-files check names a watched file nobody writes, and the
propagation model counts the canary's refusals as bootstrap.sh prints them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.constants import HOST_FILES_DIR
from infra.constructs import host_logs
from rehearsal import agent_files, blockers, propagation, rollback
from rehearsal.run import RehearsalFailed, Run
from rehearsal.standins.cloudwatch_agent_ctl import CONFIG_DIR

BOOTSTRAP = (HOST_FILES_DIR / "bootstrap.sh").read_text()


def test_relay_before_canary_starts_the_relay_with_the_enclave_again() -> None:
    reverted = blockers.relay_before_canary(BOOTSTRAP)
    relay = 'systemctl enable --now "$RELAY_UNIT"'
    assert BOOTSTRAP.index(relay) > BOOTSTRAP.index("app.parent canary")
    assert reverted.count(relay) == 1
    assert reverted.index("nitro-enclave-demo-enclave.service\n" + relay) < reverted.index(
        "app.parent canary"
    )
    with pytest.raises(blockers.NothingToRevert):
        blockers.relay_before_canary(reverted)


def test_relay_before_canary_also_starts_the_unit_unproven_and_parks_access_denied_at_once() -> None:
    patch = blockers.asset_patch("relay-before-canary")
    unit_path, relay_path = blockers.RELAY_UNIT, blockers.RELAY_MODULE
    root = HOST_FILES_DIR.parents[2]
    unit = (root / unit_path).read_text()
    assert "ExecStartPre=/opt/nitro-enclave-demo/venv/bin/python -m app.parent canary\n" in unit
    reverted_unit = patch(unit_path, unit.encode()).decode()
    assert "app.parent canary" not in reverted_unit
    assert "ExecStart=/opt/nitro-enclave-demo/venv/bin/python -m app.parent run\n" in reverted_unit
    relay = (root / relay_path).read_text()
    assert "PROPAGATION_GRACE_S = 0.0\n" in patch(relay_path, relay.encode()).decode()
    with pytest.raises(blockers.NothingToRevert):
        blockers.relay_unproven(reverted_unit)


def test_agent_log_paths_puts_the_service_suffix_back_in_the_agents_paths() -> None:
    rendered = host_logs.agent_config_json()
    reverted = json.loads(blockers.revert_user_data("agent-log-paths", rendered))
    paths = [e["file_path"] for e in reverted["logs"]["logs_collected"]["files"]["collect_list"]]
    exports = [p for p in paths if p.startswith(host_logs.LOG_DIR)]
    assert exports == [f"{host_logs.LOG_DIR}/{e.unit}.service.log" for e in host_logs.JOURNAL_EXPORTS]
    assert "/var/log/cloud-init-output.log" in paths


def _host_root(tmp_path: Path, config: str, written: dict[str, str]) -> Path:
    (tmp_path / CONFIG_DIR.lstrip("/")).mkdir(parents=True)
    (tmp_path / CONFIG_DIR.lstrip("/") / "file_amazon-cloudwatch-agent.json").write_text(config)
    for path, text in written.items():
        (tmp_path / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path.lstrip("/")).write_text(text)
    return tmp_path


def _every_file(text: str) -> dict[str, str]:
    return {f.path: text for f in host_logs.shipped()}


def test_the_agent_files_check_passes_when_every_file_exists_and_the_card_streams_grew(
    tmp_path: Path,
) -> None:
    root = _host_root(tmp_path, host_logs.agent_config_json(), _every_file("boot\n"))
    before = agent_files.sizes(root)
    for export in host_logs.JOURNAL_EXPORTS[:2]:  # relay, enclave
        (root / export.file.path.lstrip("/")).write_text("boot\ncard\n")
    agent_files.check(Run(dir=tmp_path, started=0.0), "host-1", root, before)


def test_the_agent_files_check_names_a_watched_file_that_does_not_exist(tmp_path: Path) -> None:
    config = blockers.agent_log_paths(host_logs.agent_config_json())
    root = _host_root(tmp_path, config, _every_file("line\n"))
    with pytest.raises(
        RehearsalFailed, match=r"nitro-enclave-demo-relay\.service\.log, which does not exist"
    ):
        agent_files.check(Run(dir=tmp_path, started=0.0), "host-1", root, {})


def test_the_agent_files_check_wants_the_relays_file_to_grow(tmp_path: Path) -> None:
    root = _host_root(tmp_path, host_logs.agent_config_json(), _every_file("line\n"))
    with pytest.raises(RehearsalFailed, match=r"relay: .* did not grow"):
        agent_files.check(Run(dir=tmp_path, started=0.0), "host-1", root, agent_files.sizes(root))


def test_canary_refusals_are_counted_from_the_lines_the_canary_prints(tmp_path: Path) -> None:
    log = tmp_path / propagation.BOOT_LOG
    assert propagation.canary_refusals(tmp_path) == 0
    log.parent.mkdir(parents=True)
    log.write_text(
        "nitro-enclave-demo bootstrap: step: canary: ...\n"
        "canary: attempt 1 of 8: access_denied: refused; KMS may still be propagating, trying again in 1 s\n"
        "canary: attempt 2 of 8: kms_unavailable: timeout; trying again in 2 s\n"
        "canary: attempt 3 of 8: access_denied: refused; KMS may still be propagating, trying again in 4 s\n"
    )
    assert propagation.canary_refusals(tmp_path) == 2


def test_a_feeder_round_with_parked_cards_is_summed_up_by_code_without_numbers() -> None:
    round_text = (
        "queued 2 encrypted cards in 0.2 s; waiting up to 60 s for their results\n"
        "   ************8210  ok            162 ms  card_id=c68d\n"
        "     **********3237  rejected      400 ms  card_id=805d  access_denied: KMS refused\n"
        "1/2 ok, 1 rejected or wrong, 0 missing in 0.64 s: 31.0 cards/s\n"
        "what to do: each rejected card is also on the dead-letter queue with its error_code\n"
    )
    feeder = propagation.Feeder(Run(dir=Path("."), started=0.0), box=None, name="host-1")  # type: ignore[arg-type]
    feeder.rounds = [(0, "2/2 ok, 0 rejected or wrong\n"), (1, round_text)]
    assert feeder.failed_rounds() == ["1/2 ok, 1 rejected or wrong, 0 missing in 0.64 s: 31.0 cards/s"]
    assert dict(feeder.rejected_codes()) == {"access_denied": 1}


def test_the_failing_change_moves_only_the_enclaves_kms_egress_port() -> None:
    source = (Path(__file__).parents[2] / rollback.SETTINGS_FILE).read_bytes()
    changed = rollback.wrong_egress_port(rollback.SETTINGS_FILE, source)
    assert rollback.BAD_EGRESS in changed
    assert rollback.GOOD_EGRESS not in changed
    assert len(changed) == len(source)
    assert rollback.wrong_egress_port("app/enclave/__init__.py", b"x") == b"x"


def test_the_failing_change_says_so_when_the_setting_it_moves_is_gone() -> None:
    with pytest.raises(LookupError, match="no longer holds"):
        rollback.wrong_egress_port(rollback.SETTINGS_FILE, b'DEFAULT_KMS_EGRESS_URL = "vsock://3:9999"\n')


def test_a_failed_round_is_blamed_on_the_relay_only_when_cards_came_back_access_denied() -> None:
    from collections import Counter  # noqa: PLC0415 - only this test builds counters by hand

    assert "took cards while KMS still refused its image" in propagation.failure_cause(
        Counter({"access_denied": 3, "kms_unavailable": 1})
    )
    other = propagation.failure_cause(Counter({"invalid_ciphertext": 2}))
    assert "other than the key policy" in other
    assert "canary" not in other
    assert "no card was rejected" in propagation.failure_cause(Counter())

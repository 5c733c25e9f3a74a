"""The harness's own pure pieces: IMDSv2's token rule, the template's Fn::Split over the build's
AcceptedPcr0, the blocker reversions and the load's figures."""

from __future__ import annotations

import json

import pytest

from infra.constants import REPO_ROOT
from rehearsal import blockers, figures
from rehearsal.cfn import Resolver, UnresolvedReference
from rehearsal.imds import Metadata

PCR0, OLD_PCR0 = "ab" * 48, "cd" * 48


def test_the_templates_own_split_gives_the_key_policy_both_accepted_images() -> None:
    expression = {"Fn::Split": [",", {"Fn::GetAtt": ["Build", "AcceptedPcr0"]}]}
    resolver = Resolver(attributes={("Build", "AcceptedPcr0"): f"{PCR0},{OLD_PCR0}"}, strict=True)
    assert resolver.evaluate(expression) == [PCR0, OLD_PCR0]


def test_a_strict_resolver_never_makes_a_value_up() -> None:
    with pytest.raises(UnresolvedReference, match="Ref Queue"):
        Resolver(strict=True).text({"Ref": "Queue"})


def test_imds_answers_only_with_a_token() -> None:
    metadata = Metadata(role="role", region="us-east-1", account="123456789012")
    assert not metadata.valid(None)
    token = metadata.issue(60)
    assert metadata.valid(token)
    credentials = json.loads(metadata.answer("meta-data/iam/security-credentials/role") or "{}")
    assert credentials["Code"] == "Success"
    assert credentials["AccessKeyId"]


def test_each_host_has_its_own_instance_id() -> None:
    metadata = Metadata(
        role="role", region="us-east-1", account="123456789012", instance_id="i-0rehearsal000002"
    )
    assert metadata.answer("meta-data/instance-id") == "i-0rehearsal000002"
    assert json.loads(metadata.answer("dynamic/instance-identity/document") or "{}")["instanceId"] == (
        "i-0rehearsal000002"
    )


def test_reverting_blocker_1_puts_the_blank_line_back() -> None:
    user_data = "cat <<'END_OF_ALLOCATOR_YAML'\n---\ncpu_count: 2\nEND_OF_ALLOCATOR_YAML\n"
    assert "cpu_count: 2\n\nEND_OF_ALLOCATOR_YAML" in blockers.revert_user_data(
        "allocator-blank-line", user_data
    )


def test_blocker_2_is_retired_no_host_builds_an_image() -> None:
    assert "nitro-cli-home" not in blockers.NAMES


def test_host_config_sourced_forges_the_eif_version_and_sources_demo_env_again() -> None:
    user_data = "cat >demo.env <<'END'\nEIF_VERSION=3HL4kq.x\nEXPECTED_PCR0=ab\nEND\n"
    forged = blockers.revert_user_data("host-config-sourced", user_data)
    assert f"\nEIF_VERSION=v1$(touch {blockers.FORGED_MARKER})\nEXPECTED_PCR0=ab\n" in forged
    bootstrap = (REPO_ROOT / blockers.BOOTSTRAP).read_bytes()
    reverted = blockers.asset_patch("host-config-sourced")(blockers.BOOTSTRAP, bootstrap).decode()
    assert 'set -a\n. "$CONF_DIR/demo.env"\nset +a\n' in reverted
    assert "demo_env_read" not in reverted
    # The fixed form's check forges the same value and reverts nothing.
    assert blockers.revert_user_data(blockers.FORGED, user_data) == forged
    assert blockers.asset_patch(blockers.FORGED)(blockers.BOOTSTRAP, bootstrap) == bootstrap
    assert blockers.FORGED not in blockers.NAMES


def test_a_reversion_with_nothing_to_revert_is_an_error() -> None:
    with pytest.raises(blockers.NothingToRevert):
        blockers.vsock_proxy_workers("ExecStart=/usr/bin/vsock-proxy 8000 kms 443\n")


def _card(status: str, code: str | None = None, receive_count: int = 1) -> str:
    fate = {"logger": "app.parent.relay", "card_id": "c", "status": status, "code": code}
    return json.dumps({**fate, "receive_count": receive_count, "enclave_ms": 100.0})


def test_a_healthy_load_has_no_problems() -> None:
    found = figures.from_journals("\n".join([_card("ok")] * 3 + ["Started relay"]), "listening\n")
    assert (found.processed, found.ok, found.problems()) == (3, 3, [])


def test_kms_timeouts_and_redeliveries_fail_the_load_and_name_the_busy_proxy() -> None:
    relay = "\n".join([_card("retry", "kms_unavailable"), _card("ok", receive_count=2)])
    proxy = "rehearsal stand-in vsock-proxy: all 4 workers busy; connection 5 waits\n"
    problems = " ".join(figures.from_journals(relay, proxy).problems())
    assert "kms_unavailable" in problems
    assert "received more than once" in problems
    assert "every worker busy 1 time" in problems


def test_a_proxy_busy_for_a_moment_alone_fails_nothing() -> None:
    proxy = "rehearsal stand-in vsock-proxy: all 32 workers busy; an accepted connection waits\n"
    assert figures.from_journals(_card("ok"), proxy).problems() == []


def _started() -> str:
    return json.dumps({"ts": "t", "level": "INFO", "logger": "app.parent.__main__", "msg": "relay started"})


def test_every_relay_start_needs_a_passing_canary_before_it_in_the_units_journal() -> None:
    canary_ok = "canary ok: this host's enclave decrypted the test card ending 1111 through attested KMS"
    proven = "\n".join([canary_ok, _started(), _card("ok"), canary_ok, _started()])
    assert figures.from_journals(proven, "").problems() == []
    # The second start (a reboot, say) ran no canary.
    unproven = "\n".join([canary_ok, _started(), _card("ok"), _started()])
    (problem,) = figures.from_journals(unproven, "").problems()
    assert problem.startswith("the relay started 1 time(s) with no passing canary before it")

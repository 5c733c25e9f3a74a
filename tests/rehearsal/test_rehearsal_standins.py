"""The harness's own stand-ins and pure pieces: the wait-condition handle's contract, IMDSv2's token rule,
the template's Fn::Select/Fn::Split over WaitCondition.Data, and the blocker reversions."""

from __future__ import annotations

import json

import pytest

from rehearsal import blockers, figures
from rehearsal.cfn import Resolver, UnresolvedReference
from rehearsal.imds import Metadata
from rehearsal.wait_handle import BadSignal, Signal, parse_signal, wait_condition_data

PCR0 = "ab" * 48


def test_a_signal_as_the_user_data_sends_it_is_accepted() -> None:
    body = json.dumps({"Status": "SUCCESS", "Reason": "up", "UniqueId": "pcr0", "Data": PCR0}).encode()
    assert parse_signal(body) == Signal("SUCCESS", "pcr0", PCR0, "up")


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "not JSON"),
        (b'["SUCCESS"]', "one JSON object"),
        (b'{"Status": "SUCCESS", "UniqueId": "x", "Extra": "y"}', "unknown keys"),
        (b'{"Status": "DONE", "UniqueId": "x"}', "not one of SUCCESS, FAILURE"),
        (b'{"Status": "SUCCESS"}', "missing keys"),
        (b'{"Status": "SUCCESS", "UniqueId": "x", "Data": 3}', "string"),
    ],
)
def test_the_handle_refuses_what_cloudformation_refuses(body: bytes, complaint: str) -> None:
    with pytest.raises(BadSignal, match=complaint):
        parse_signal(body)


def test_the_templates_own_select_split_takes_pcr0_out_of_the_wait_condition_data() -> None:
    data = wait_condition_data([Signal("SUCCESS", "pcr0", PCR0, "")])
    expression = {"Fn::Select": [3, {"Fn::Split": ['"', {"Fn::GetAtt": ["Boot", "Data"]}]}]}
    assert Resolver(attributes={("Boot", "Data"): data}, strict=True).text(expression) == PCR0


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


def test_reverting_blocker_1_puts_the_blank_line_back() -> None:
    user_data = "cat <<'END_OF_ALLOCATOR_YAML'\n---\ncpu_count: 2\nEND_OF_ALLOCATOR_YAML\n"
    assert "cpu_count: 2\n\nEND_OF_ALLOCATOR_YAML" in blockers.revert_user_data(
        "allocator-blank-line", user_data
    )


def test_reverting_blocker_2_removes_nitro_clis_home() -> None:
    bootstrap = 'set -e\nexport NITRO_CLI_ARTIFACTS="$HOME_DIR/a"\nexport HOME="${HOME:-/root}"\nlog\n'
    patched = blockers.asset_patch("nitro-cli-home")(blockers.BOOTSTRAP, bootstrap.encode()).decode()
    assert patched == "set -e\nlog\n"


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

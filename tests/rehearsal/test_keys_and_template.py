"""The rehearsal's key-policy checks (what the roll asserts) and the template edits it replays, on the
project's own key policy document and plain templates."""

from __future__ import annotations

from pathlib import Path

from app.keypolicy.document import key_policy
from app.local import principals
from rehearsal import keys, roll
from rehearsal.template import Synthesized

NEW, OLD, OTHER = "ab" * 48, "cd" * 48, "ef" * 48
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/rehearsal"
CONTEXT = {"app": "nitro-enclave-demo"}


def policy(*pins: str) -> dict[str, object]:
    return key_policy(
        account_root=principals.ACCOUNT_ROOT_ARN,
        role_arn=principals.INSTANCE_ROLE_ARN,
        accepted_pcr0=list(pins),
        encryption_context=CONTEXT,
    )


def test_during_the_roll_both_images_decrypt_and_no_other() -> None:
    rolling = policy(NEW, OLD)
    assert keys.accepted_images(rolling) == {NEW, OLD}
    assert keys.decides(rolling, KEY_ARN, OLD)
    assert keys.decides(rolling, KEY_ARN, NEW)
    assert not keys.decides(rolling, KEY_ARN, OTHER)


def test_after_retire_previous_the_old_image_is_refused() -> None:
    retired = policy(NEW)
    assert keys.accepted_images(retired) == {NEW}
    assert not keys.decides(retired, KEY_ARN, OLD)
    assert keys.decides(retired, KEY_ARN, NEW)


def test_the_required_encryption_context_is_read_from_the_policy() -> None:
    assert keys.required_context(policy(NEW)) == {"kms:EncryptionContext:app": "nitro-enclave-demo"}


def template() -> Synthesized:
    resources = {
        "Build": {"Type": "Custom::EnclaveImageBuild",
                  "Properties": {"SourceHash": "h1", "SourceLocation": "b/h1.zip",
                                 "RetirePrevious": "false"}},
        "Hosts": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {
            "UserData": {"Fn::Base64": {"Fn::Sub": ["key ${CodeKey}", {"CodeKey": "h1.zip"}]}}}}},
    }  # fmt: skip
    return Synthesized(template={"Resources": resources}, outdir=Path("."))


def test_a_new_asset_hash_replaces_the_old_one_everywhere_as_a_new_synth_would() -> None:
    changed = template().with_text_replaced("h1", "h2")
    assert changed.properties("Build")["SourceLocation"] == "b/h2.zip"
    assert changed.user_data_variables() == {"CodeKey": "h2.zip"}
    assert template().properties("Build")["SourceHash"] == "h1"  # the original stays as it was


def test_retire_previous_changes_only_the_build_resources_property() -> None:
    retired = roll.retire_previous(template())
    assert retired.properties("Build")["RetirePrevious"] == "true"
    assert retired.properties("Hosts") == template().properties("Hosts")

"""What doctor compares the running PCR0 with: the key policy's own accepted values (both during a roll),
read with the host role's kms:DescribeKey and kms:GetKeyPolicy; against the emulator over real HTTP."""

from __future__ import annotations

import json

import boto3
import pytest

from app.keypolicy.document import account_root_arn, key_policy
from app.ops import collect

REGION = "ap-southeast-2"  # moto keeps state per region; other test modules use their own
NEW, PREVIOUS = "ab" * 48, "cd" * 48


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def _key(accepted: list[str]) -> tuple[str, str]:
    """(the key's ARN, an alias pointing at it)."""
    kms = boto3.client("kms", region_name=REGION)
    policy = key_policy(
        account_root=account_root_arn("123456789012"),
        role_arn="arn:aws:iam::123456789012:role/host",
        accepted_pcr0=accepted,
        encryption_context={"app": "nitro-enclave-demo"},
    )
    metadata = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    alias = f"alias/doctor-{metadata['KeyId'][:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=metadata["KeyId"])
    return metadata["Arn"], alias


@pytest.mark.usefixtures("aws")
def test_the_pin_is_every_value_the_key_policy_accepts() -> None:
    arn, _ = _key([NEW, PREVIOUS])
    assert collect.pinned_pcr0({"KMS_KEY_ID": arn}, REGION) == f"{NEW},{PREVIOUS}"


@pytest.mark.usefixtures("aws")
def test_an_alias_is_not_followed_even_to_a_readable_key(caplog: pytest.LogCaptureFixture) -> None:
    _, alias = _key([NEW])
    assert collect.pinned_pcr0({"KMS_KEY_ID": alias}, REGION) is None
    errors = [getattr(record, "fields", {}).get("error", "") for record in caplog.records]
    assert any("alias redirection" in error for error in errors), errors


@pytest.mark.usefixtures("aws")
def test_an_unreadable_key_policy_falls_back_to_nothing_without_a_parameter() -> None:
    missing = f"arn:aws:kms:{REGION}:123456789012:key/00000000-0000-4000-8000-000000000000"
    assert collect.pinned_pcr0({"KMS_KEY_ID": missing}, REGION) is None


def test_an_explicit_pin_wins() -> None:
    assert collect.pinned_pcr0({"ENCLAVE_PCR0": NEW, "KMS_KEY_ID": "alias/x"}, REGION) == NEW

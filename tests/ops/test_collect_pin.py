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


def _key(accepted: list[str]) -> str:
    kms = boto3.client("kms", region_name=REGION)
    policy = key_policy(
        account_root=account_root_arn("123456789012"),
        role_arn="arn:aws:iam::123456789012:role/host",
        accepted_pcr0=accepted,
        encryption_context={"app": "nitro-enclave-demo"},
    )
    key_id: str = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    alias = f"alias/doctor-{key_id[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return alias


@pytest.mark.usefixtures("aws")
def test_the_pin_is_every_value_the_key_policy_accepts() -> None:
    alias = _key([NEW, PREVIOUS])
    assert collect.pinned_pcr0({"KMS_KEY_ID": alias}, REGION) == f"{NEW},{PREVIOUS}"


@pytest.mark.usefixtures("aws")
def test_an_unreadable_key_policy_falls_back_to_nothing_without_a_parameter() -> None:
    assert collect.pinned_pcr0({"KMS_KEY_ID": "alias/no-such-key"}, REGION) is None


def test_an_explicit_pin_wins() -> None:
    assert collect.pinned_pcr0({"ENCLAVE_PCR0": NEW, "KMS_KEY_ID": "alias/x"}, REGION) == NEW

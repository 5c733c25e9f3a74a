"""The KMS key: rotation, deletion, and the pin (issue 4): Decrypt only with the deployment's own PCR0."""

from __future__ import annotations

from typing import Any

import pytest

from infra.settings import ZERO_PCR
from tests.infra.cfn import Json, Statement, allows, only, resources, statements
from tests.infra.conftest import PCR0_GIVEN, Synth
from tests.infra.test_network_and_host import instance_role

IMAGE_SHA384 = "kms:RecipientAttestation:ImageSha384"


def key_statements(template: Json) -> dict[str, Json]:
    _, key = only(template, "AWS::KMS::Key")
    return {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}


def pinned_parameter(template: Json) -> tuple[str, Json]:
    found = [
        (k, r)
        for k, r in resources(template, "AWS::SSM::Parameter").items()
        if "/pinned-pcr0" in str(r["Properties"]["Name"])
    ]
    assert len(found) == 1
    return found[0]


def accepted(template: Json) -> list[Any]:
    condition = key_statements(template)["AttestedEnclaveDecrypts"]["Condition"]
    values: list[Any] = condition["StringEqualsIgnoreCase"][IMAGE_SHA384]
    return values


def test_key_rotates_and_is_deleted_on_destroy(default: Synth) -> None:
    default.assertions.has_resource(
        "AWS::KMS::Key",
        {
            "Properties": {"EnableKeyRotation": True, "PendingWindowInDays": 7},
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
        },
    )
    default.assertions.has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/nitro-enclave-demo"})


def test_default_pin_is_bound_to_this_deployments_measurement(template: Json) -> None:
    param_id, param = pinned_parameter(template)
    wait_id, _ = only(template, "AWS::CloudFormation::WaitCondition")
    assert accepted(template) == [{"Fn::GetAtt": [param_id, "Value"]}]
    assert param["Properties"]["Value"] == {
        "Fn::Select": [3, {"Fn::Split": ['"', {"Fn::GetAtt": [wait_id, "Data"]}]}]
    }


def test_decrypt_requires_the_encryption_context(template: Json) -> None:
    condition = key_statements(template)["AttestedEnclaveDecrypts"]["Condition"]
    assert condition["StringEquals"] == {"kms:EncryptionContext:app": "nitro-enclave-demo"}


def test_default_policy_never_accepts_zeros(template: Json) -> None:
    _, key = only(template, "AWS::KMS::Key")
    assert ZERO_PCR not in str(key)
    _, param = pinned_parameter(template)
    assert ZERO_PCR not in str(param)


def test_decrypt_is_denied_to_everyone_without_the_pinned_measurement(template: Json) -> None:
    deny = key_statements(template)["DenyDecryptOutsideThePinnedEnclave"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": "*"}
    assert set(deny["Action"]) == {"kms:Decrypt", "kms:ReEncryptFrom"}
    assert deny["Condition"] == {"StringNotEqualsIgnoreCase": {IMAGE_SHA384: accepted(template)}}


def test_given_pcr0_is_pinned_literally(given_pcr0: Synth) -> None:
    _, param = pinned_parameter(given_pcr0.template)
    assert param["Properties"]["Value"] == PCR0_GIVEN


def test_debug_mode_accepts_zeros_and_warns(debug: Synth, template: Json) -> None:
    param_id, _ = pinned_parameter(debug.template)
    assert accepted(debug.template) == [{"Fn::GetAtt": [param_id, "Value"]}, ZERO_PCR]
    outputs = debug.template["Outputs"]
    assert outputs["AttestationMode"]["Value"] == "DEBUG-ATTESTATION-OFF"
    assert "ATTESTATION IS OFF" in outputs["AttestationWarning"]["Value"]
    assert "AttestationWarning" not in template["Outputs"]
    assert template["Outputs"]["AttestationMode"]["Value"] == "PINNED"


def test_a_new_boot_generation_gets_a_new_signal_and_instance(debug: Synth, template: Json) -> None:
    # Replacing the instance must come with a fresh wait condition, so the key re-pins to the new EIF.
    for type_name in ("AWS::CloudFormation::WaitCondition", "AWS::EC2::Instance"):
        (before,) = resources(template, type_name)
        (after,) = resources(debug.template, type_name)
        assert before != after


def _decrypt_grants(template: Json) -> list[Statement]:
    return [s for s in statements(template) if allows(s, "kms:Decrypt")]


@pytest.mark.parametrize("variant", ["default", "debug", "given_pcr0"])
def test_only_the_attested_statement_grants_decrypt(variant: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(variant)
    grants = _decrypt_grants(synth.template)
    assert [(g.sid, g.where.split(" ")[1]) for g in grants] == [
        ("AttestedEnclaveDecrypts", "(AWS::KMS::Key)")
    ]
    assert IMAGE_SHA384 in grants[0].condition["StringEqualsIgnoreCase"]


def test_account_administrators_cannot_use_the_key(template: Json) -> None:
    admin = Statement(
        where="key",
        sid="",
        effect="Allow",
        principal=None,
        condition={},
        actions=tuple(key_statements(template)["KeyAdministrationWithoutUse"]["Action"]),
    )
    for action in ("kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey"):
        assert not allows(admin, action), action


def test_instance_role_cannot_change_the_key_policy(template: Json) -> None:
    role_id, _ = instance_role(template)
    role_arn = {"Fn::GetAtt": [role_id, "Arn"]}
    for statement in statements(template):
        if statement.principal == {"AWS": role_arn} or "IAM::Policy" in statement.where:
            assert not allows(statement, "kms:PutKeyPolicy"), statement
            assert not allows(statement, "kms:CreateGrant"), statement
    deny = key_statements(template)["DenyInstanceRoleKeyManagement"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": role_arn}
    assert {"kms:PutKeyPolicy", "kms:CreateGrant"} <= set(deny["Action"])


def test_no_iam_policy_mentions_kms(template: Json) -> None:
    for statement in statements(template):
        if "IAM::" in statement.where:
            assert not any(a.lower().startswith("kms:") or a == "*" for a in statement.actions), statement


def test_cloudformation_alone_writes_the_measurements_parameter(template: Json) -> None:
    # The instance used to overwrite a value the template owns: drift, and any stack update reset it.
    (_, param), *others = [
        (k, r)
        for k, r in resources(template, "AWS::SSM::Parameter").items()
        if "/measurements" in str(r["Properties"]["Name"])
    ]
    assert not others
    wait_id, _ = only(template, "AWS::CloudFormation::WaitCondition")
    measured = {"Fn::Select": [3, {"Fn::Split": ['"', {"Fn::GetAtt": [wait_id, "Data"]}]}]}
    assert param["Properties"]["Value"] == {"Fn::Join": ["", ['{"PCR0":"', measured, '"}']]}
    writes = [s for s in statements(template) if allows(s, "ssm:PutParameter")]
    assert writes == [], f"something may write SSM parameters: {writes}"


def test_the_account_may_rewrite_the_key_policy_as_the_docs_say(template: Json) -> None:
    # docs/infra.md and README: an administrator allowed kms:PutKeyPolicy through the account statement can
    # replace the policy and its pin; the instance role is denied it. If this changes, so must the docs.
    key_policy = [s for s in statements(template) if "AWS::KMS::Key" in s.where]
    rewriters = [s for s in key_policy if allows(s, "kms:PutKeyPolicy")]
    assert rewriters, "the docs say the account keeps kms:PutKeyPolicy"
    assert all("root" in str(s.principal) for s in rewriters)  # the account, through IAM; nobody else
    assert not [s for s in key_policy if allows(s, "kms:Decrypt") and not s.condition]

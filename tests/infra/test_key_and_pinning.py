"""The KMS key: rotation, deletion, and the pin (issues 4 and 9): Decrypt only with a PCR0 the enclave image
build reported (CodeBuild's own API, through the build resource's AcceptedPcr0), never one a host wrote."""

from __future__ import annotations

from typing import Any

import pytest

from infra.constants import REPO_ROOT
from infra.settings import ZERO_PCR
from tests.infra.cfn import Json, Statement, allows, card_key, only, resources, statements
from tests.infra.conftest import PCR0_GIVEN, Synth, SynthFn
from tests.infra.test_network_and_host import instance_role

IMAGE_SHA384 = "kms:RecipientAttestation:ImageSha384"
BUILD_TYPE = "Custom::EnclaveImageBuild"


def build_att(template: Json, attribute: str) -> Json:
    build_id, _ = only(template, BUILD_TYPE)
    return {"Fn::GetAtt": [build_id, attribute]}


def key_statements(template: Json) -> dict[str, Json]:
    _, key = card_key(template)
    return {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}


def pinned_parameter(template: Json) -> tuple[str, Json]:
    found = [
        (k, r)
        for k, r in resources(template, "AWS::SSM::Parameter").items()
        if "/pinned-pcr0" in str(r["Properties"]["Name"])
    ]
    assert len(found) == 1
    return found[0]


def accepted(template: Json) -> Any:
    condition = key_statements(template)["AttestedEnclaveDecrypts"]["Condition"]
    return condition["StringEqualsIgnoreCase"][IMAGE_SHA384]


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


def test_the_attested_decrypt_accepts_what_the_build_reports(template: Json) -> None:
    assert accepted(template) == {"Fn::Split": [",", build_att(template, "AcceptedPcr0")]}


def test_the_pinned_parameter_records_the_builds_pcr0(template: Json) -> None:
    _, param = pinned_parameter(template)
    assert param["Properties"]["Value"] == build_att(template, "Pcr0")


def test_no_wait_condition_anywhere(template: Json) -> None:
    # Its handle was a bearer credential any local process could read and pin its own EIF with (issue 9).
    for type_name in ("AWS::CloudFormation::WaitCondition", "AWS::CloudFormation::WaitConditionHandle"):
        assert not resources(template, type_name)
    assert "WaitCondition" not in str(template)


def test_decrypt_requires_the_encryption_context(template: Json) -> None:
    condition = key_statements(template)["AttestedEnclaveDecrypts"]["Condition"]
    assert condition["StringEquals"] == {"kms:EncryptionContext:app": "nitro-enclave-demo"}


def test_default_policy_never_accepts_zeros(template: Json) -> None:
    _, key = card_key(template)
    assert ZERO_PCR not in str(key)
    _, param = pinned_parameter(template)
    assert ZERO_PCR not in str(param)


def test_decrypt_is_denied_to_everyone_without_the_pinned_measurement(template: Json) -> None:
    deny = key_statements(template)["DenyDecryptOutsideThePinnedEnclave"]
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == {"AWS": "*"}
    assert set(deny["Action"]) == {"kms:Decrypt", "kms:ReEncryptFrom"}
    assert deny["Condition"] == {"StringNotEqualsIgnoreCase": {IMAGE_SHA384: accepted(template)}}


def test_given_pcr0_is_an_assertion_on_the_build_not_a_pin(given_pcr0: Synth, template: Json) -> None:
    _, build = only(given_pcr0.template, BUILD_TYPE)
    assert build["Properties"]["ExpectedPcr0"] == PCR0_GIVEN
    assert accepted(given_pcr0.template) == accepted(template)
    assert PCR0_GIVEN not in str(key_statements(given_pcr0.template))


def test_debug_mode_accepts_zeros_and_warns(debug: Synth, template: Json) -> None:
    joined = {"Fn::Join": [",", [build_att(debug.template, "AcceptedPcr0"), ZERO_PCR]]}
    assert accepted(debug.template) == {"Fn::Split": [",", joined]}
    outputs = debug.template["Outputs"]
    assert outputs["AttestationMode"]["Value"] == "DEBUG-ATTESTATION-OFF"
    assert "ATTESTATION IS OFF" in outputs["AttestationWarning"]["Value"]
    assert "AttestationWarning" not in template["Outputs"]
    assert template["Outputs"]["AttestationMode"]["Value"] == "PINNED"


def test_retire_previous_reaches_the_build(synth: SynthFn, template: Json) -> None:
    _, build = only(template, BUILD_TYPE)
    _, retired = only(synth({"retire_previous": "true"}).template, BUILD_TYPE)
    assert (build["Properties"]["RetirePrevious"], retired["Properties"]["RetirePrevious"]) == (
        "false",
        "true",
    )


def _decrypt_grants(template: Json) -> list[Statement]:
    """Every statement that allows kms:Decrypt of the card key: its key policy's and every IAM policy's (the
    log groups' key decrypts only what CloudWatch Logs encrypted with it, never a card)."""
    card_key_id, _ = card_key(template)
    return [
        s
        for s in statements(template)
        if allows(s, "kms:Decrypt")
        and (s.where == f"{card_key_id} (AWS::KMS::Key)" or not s.where.endswith("(AWS::KMS::Key)"))
    ]


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
    # The build's own measurements, written by CloudFormation; no host may write a parameter.
    (_, param), *others = [
        (k, r)
        for k, r in resources(template, "AWS::SSM::Parameter").items()
        if "/measurements" in str(r["Properties"]["Name"])
    ]
    assert not others
    pcrs = [build_att(template, name) for name in ("Pcr0", "Pcr1", "Pcr2", "NitroCliVersion")]
    parts = ['{"PCR0":"', pcrs[0], '","PCR1":"', pcrs[1], '","PCR2":"', pcrs[2]]
    assert param["Properties"]["Value"] == {
        "Fn::Join": ["", [*parts, '","NitroCliVersion":"', pcrs[3], '"}']]
    }
    writes = [s for s in statements(template) if allows(s, "ssm:PutParameter")]
    assert writes == [], f"something may write SSM parameters: {writes}"


def test_the_account_may_rewrite_the_key_policy_as_the_docs_say(template: Json) -> None:
    # docs/infra.md and README: an administrator allowed kms:PutKeyPolicy through the account statement can
    # replace the policy and its pin; the instance role is denied it. If this changes, so must the docs.
    card_key_id, _ = card_key(template)
    key_policy = [s for s in statements(template) if s.where == f"{card_key_id} (AWS::KMS::Key)"]
    rewriters = [s for s in key_policy if allows(s, "kms:PutKeyPolicy")]
    assert rewriters, "the docs say the account keeps kms:PutKeyPolicy"
    assert all("root" in str(s.principal) for s in rewriters)  # the account, through IAM; nobody else
    assert not [s for s in key_policy if allows(s, "kms:Decrypt") and not s.condition]


def test_the_readmes_trust_paragraph_matches_the_template(template: Json) -> None:
    # README, "Who can and cannot influence the pin": the hosts cannot. Their role's every action, checked
    # against what could change the pin (the key, the build, its inputs, the stack) or write a value to it.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "**Who can and cannot influence the pin**" in readme
    role_id, _ = instance_role(template)
    actions = {
        action.lower()
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    forbidden = ("kms:", "codebuild:", "lambda:", "iam:", "states:", "ssm:put", "s3:put", "s3:delete")
    assert not [a for a in actions if a.startswith(forbidden) or "*" in a]
    assert {a for a in actions if a.startswith("cloudformation:")} == {"cloudformation:signalresource"}
    assert "kms:PutKeyPolicy" in key_statements(template)["DenyInstanceRoleKeyManagement"]["Action"]
    paragraph = _trust_paragraph(readme)
    # "the one EIF object version it runs": GetObjectVersion only, for the build's version only.
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    (eif,) = [s for s in statements(template) if s.sid == "FetchPinnedEif"]
    assert eif.actions == ("s3:GetObjectVersion",)
    assert eif.condition == {"StringEquals": {"s3:versionid": {"Fn::GetAtt": [build_id, "EifVersion"]}}}
    assert "`s3:GetObjectVersion` on its key with `s3:versionid` equal to the" in paragraph
    # SignalResource takes any UniqueId from the role: the paragraph says so, and that the pin is the key's.
    assert "send `SUCCESS` for any `UniqueId`" in paragraph
    assert "cannot affect the pin: the key policy" in paragraph


def _trust_paragraph(readme: str) -> str:
    start = readme.index("- **Who can and cannot influence the pin**")
    end = readme.index("\n- **", start + 1)
    return " ".join(readme[start:end].split())

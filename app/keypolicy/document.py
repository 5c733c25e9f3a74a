"""The key policy: one pure function returning plain JSON, used by the CDK stack and by local mode.

The cloud renders it with CloudFormation tokens (the role's ARN; the accepted PCR0 values, a Fn::Split of
the enclave image build's AcceptedPcr0, which come from CodeBuild's API, never from a host); local mode
renders it with the emulator's principal ARNs and the local pin. Nothing else states who may use the key:
the emulator evaluates exactly these statements (`app.keypolicy.evaluator`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

VERSION: Final = "2012-10-17"
IMAGE_SHA384: Final = "kms:RecipientAttestation:ImageSha384"
ENCRYPTION_CONTEXT_PREFIX: Final = "kms:EncryptionContext:"

SID_ADMINISTRATION: Final = "KeyAdministrationWithoutUse"
SID_ENCRYPT: Final = "InstanceRoleEncrypts"
SID_DESCRIBE: Final = "InstanceRoleDescribes"
SID_ATTESTED_DECRYPT: Final = "AttestedEnclaveDecrypts"
SID_DENY_UNATTESTED: Final = "DenyDecryptOutsideThePinnedEnclave"
SID_DENY_ROLE_MANAGEMENT: Final = "DenyInstanceRoleKeyManagement"

# Everything an administrator needs, and none of Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*.
ADMIN_ACTIONS: Final = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)
# Read-only calls the instance role makes: DescribeKey (alias to ARN) and GetKeyPolicy (`attest`, and the
# producer verifying results, read the pin from the policy itself, not from a copy).
ROLE_READ_ACTIONS: Final = ("kms:DescribeKey", "kms:GetKeyPolicy")
# The instance role may never change who can use the key, even if an IAM policy later tried to allow it.
ROLE_FORBIDDEN_ACTIONS: Final = (
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:UpdateAlias",
    "kms:CreateAlias",
    "kms:DeleteAlias",
)
DENIED_WITHOUT_ATTESTATION: Final = ("kms:Decrypt", "kms:ReEncryptFrom")


def account_root_arn(account_id: str, partition: str = "aws") -> str:
    """The principal that stands for the account: the key policy delegates to its IAM policies."""
    return f"arn:{partition}:iam::{account_id}:root"


def key_policy(
    *,
    account_root: str,
    role_arn: str,
    accepted_pcr0: Sequence[str],
    encryption_context: Mapping[str, str],
) -> dict[str, Any]:
    """The whole key policy: administration without use, Encrypt for the role, attested Decrypt only.

    Values may be CloudFormation tokens (CDK strings); the structure is the same in every rendering.
    """
    context_condition = {f"{ENCRYPTION_CONTEXT_PREFIX}{k}": v for k, v in encryption_context.items()}
    role = {"AWS": role_arn}
    pins = list(accepted_pcr0)
    return {
        "Version": VERSION,
        "Statement": [
            _allow(SID_ADMINISTRATION, {"AWS": account_root}, list(ADMIN_ACTIONS)),
            _allow(SID_ENCRYPT, role, ["kms:Encrypt"], {"StringEquals": context_condition}),
            _allow(SID_DESCRIBE, role, list(ROLE_READ_ACTIONS)),
            _allow(
                SID_ATTESTED_DECRYPT,
                role,
                ["kms:Decrypt"],
                {"StringEqualsIgnoreCase": {IMAGE_SHA384: pins}, "StringEquals": context_condition},
            ),
            {
                "Sid": SID_DENY_UNATTESTED,
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": list(DENIED_WITHOUT_ATTESTATION),
                "Resource": "*",
                "Condition": {"StringNotEqualsIgnoreCase": {IMAGE_SHA384: pins}},
            },
            {
                "Sid": SID_DENY_ROLE_MANAGEMENT,
                "Effect": "Deny",
                "Principal": role,
                "Action": list(ROLE_FORBIDDEN_ACTIONS),
                "Resource": "*",
            },
        ],
    }


def _allow(
    sid: str, principal: dict[str, str], actions: list[str], condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": actions,
        "Resource": "*",
    }
    if condition:
        statement["Condition"] = condition
    return statement

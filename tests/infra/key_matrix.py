"""The access matrix of issue 10 as data, and the template's key policy resolved to concrete values.

The template's tokens become what CloudFormation would put there: the role's ARN, the account root from
the pseudo parameters (tests/infra/cfn.py), and the accepted PCR0 values (stand-ins for what the enclave
image build's custom resource returns as AcceptedPcr0: its PCR0, then the previous one during a roll).
Each row is then decided by `app.keypolicy.evaluator`, the evaluator local mode runs on every KMS call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.keypolicy.document import IMAGE_SHA384, account_root_arn
from app.keypolicy.evaluator import Caller, Request, evaluate
from infra.settings import ZERO_PCR
from rehearsal.cfn import Resolver
from tests.infra.cfn import PSEUDO, Json, card_key, only

ACCOUNT = PSEUDO["AWS::AccountId"]
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/NitroEnclaveDemo-InstanceRole"
ROOT_ARN = account_root_arn(ACCOUNT)
KEY_ARN = f"arn:aws:kms:{PSEUDO['AWS::Region']}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
MEASURED_PCR0 = "5e" * 48  # stands for the PCR0 the enclave image build reports
PREVIOUS_PCR0 = "6a" * 48  # stands for the PCR0 of the image that build replaced
BUILD_TYPE = "Custom::EnclaveImageBuild"
OTHER_PCR0 = "7f" * 48
ADMINISTRATOR_ACCESS = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}

ROLE = Caller(
    f"arn:aws:sts::{ACCOUNT}:assumed-role/NitroEnclaveDemo-InstanceRole/i-0abc",
    ACCOUNT,
    frozenset({ROLE_ARN}),
)
ADMIN = Caller(f"arn:aws:iam::{ACCOUNT}:user/administrator", ACCOUNT, frozenset(), (ADMINISTRATOR_ACCESS,))
ROOT = Caller(ROOT_ARN, ACCOUNT, frozenset({ROOT_ARN}), is_account_root=True)
STRANGER = Caller(
    "arn:aws:sts::999999999999:assumed-role/x/y",
    "999999999999",
    frozenset({"arn:aws:iam::999999999999:role/x"}),
    (ADMINISTRATOR_ACCESS,),
)
CONTEXT = {"kms:EncryptionContext:app": "nitro-enclave-demo"}

DENY_UNATTESTED = ("explicit_deny", "DenyDecryptOutsideThePinnedEnclave")
DENY_MANAGEMENT = ("explicit_deny", "DenyInstanceRoleKeyManagement")
ATTESTED = ("allow", "AttestedEnclaveDecrypts")
ADMINISTERS = ("allow", "KeyAdministrationWithoutUse")
NOT_ALLOWED = ("implicit_deny", None)


@dataclass(frozen=True)
class Row:
    name: str
    caller: Caller
    action: str
    image: str | None  # the attested PCR0 (kms:RecipientAttestation:ImageSha384), None: no Recipient
    context: Mapping[str, str]
    expected: tuple[str, str | None]
    debug_expected: tuple[str, str | None] | None = None  # where enclave_debug=true differs

    def outcome(self, policy: Json, pin: str) -> tuple[str, str | None]:
        image = pin if self.image == "pin" else pin.upper() if self.image == "PIN" else self.image
        attested = {IMAGE_SHA384: image, "kms:RecipientAttestation:PCR0": image} if image else {}
        decision = evaluate(policy, Request(self.caller, self.action, KEY_ARN, {**self.context, **attested}))
        return decision.kind, decision.statement


def _ctx(value: str | None) -> dict[str, str]:
    return {} if value is None else {"kms:EncryptionContext:app": value}


MATRIX = (
    Row("role Decrypt without Recipient", ROLE, "kms:Decrypt", None, CONTEXT, DENY_UNATTESTED),
    Row("role Decrypt, pinned PCR0", ROLE, "kms:Decrypt", "pin", CONTEXT, ATTESTED),
    Row("role Decrypt, pinned PCR0 in upper case", ROLE, "kms:Decrypt", "PIN", CONTEXT, ATTESTED),
    Row("role Decrypt, another PCR0", ROLE, "kms:Decrypt", OTHER_PCR0, CONTEXT, DENY_UNATTESTED),
    Row("role Decrypt, all-zero PCR0", ROLE, "kms:Decrypt", ZERO_PCR, CONTEXT, DENY_UNATTESTED, ATTESTED),
    Row("role Decrypt, pinned, wrong context", ROLE, "kms:Decrypt", "pin", _ctx("other-app"), NOT_ALLOWED),
    Row(
        "role Decrypt, pinned, context in other case",
        ROLE,
        "kms:Decrypt",
        "pin",
        _ctx("Nitro-Enclave-Demo"),
        NOT_ALLOWED,
    ),
    Row("role Decrypt, pinned, no context", ROLE, "kms:Decrypt", "pin", {}, NOT_ALLOWED),
    Row("role ReEncryptFrom without Recipient", ROLE, "kms:ReEncryptFrom", None, CONTEXT, DENY_UNATTESTED),
    Row("account root Decrypt without Recipient", ROOT, "kms:Decrypt", None, CONTEXT, DENY_UNATTESTED),
    Row("account root Decrypt, pinned PCR0", ROOT, "kms:Decrypt", "pin", CONTEXT, NOT_ALLOWED),
    Row("administrator Decrypt, pinned PCR0", ADMIN, "kms:Decrypt", "pin", CONTEXT, NOT_ALLOWED),
    Row("administrator Encrypt", ADMIN, "kms:Encrypt", None, CONTEXT, NOT_ALLOWED),
    Row(
        "role Encrypt with the context", ROLE, "kms:Encrypt", None, CONTEXT, ("allow", "InstanceRoleEncrypts")
    ),
    Row("role Encrypt without the context", ROLE, "kms:Encrypt", None, {}, NOT_ALLOWED),
    Row(
        "role Encrypt, context in other case",
        ROLE,
        "kms:Encrypt",
        None,
        _ctx("Nitro-Enclave-Demo"),
        NOT_ALLOWED,
    ),
    Row("role DescribeKey", ROLE, "kms:DescribeKey", None, {}, ("allow", "InstanceRoleDescribes")),
    Row("role GetKeyPolicy", ROLE, "kms:GetKeyPolicy", None, {}, ("allow", "InstanceRoleDescribes")),
    Row("role PutKeyPolicy", ROLE, "kms:PutKeyPolicy", None, {}, DENY_MANAGEMENT),
    Row("role CreateGrant", ROLE, "kms:CreateGrant", None, {}, DENY_MANAGEMENT),
    Row("role ScheduleKeyDeletion", ROLE, "kms:ScheduleKeyDeletion", None, {}, DENY_MANAGEMENT),
    Row("administrator PutKeyPolicy", ADMIN, "kms:PutKeyPolicy", None, {}, ADMINISTERS),
    Row("administrator CreateGrant", ADMIN, "kms:CreateGrant", None, {}, ADMINISTERS),
    Row("administrator GetKeyPolicy", ADMIN, "kms:GetKeyPolicy", None, {}, ADMINISTERS),
    Row(
        "another account's admin Decrypt without Recipient",
        STRANGER,
        "kms:Decrypt",
        None,
        CONTEXT,
        DENY_UNATTESTED,
    ),
    Row("another account's admin PutKeyPolicy", STRANGER, "kms:PutKeyPolicy", None, {}, NOT_ALLOWED),
    Row("account root PutKeyPolicy", ROOT, "kms:PutKeyPolicy", None, {}, ADMINISTERS),
)


def expected(row: Row, debug: bool) -> tuple[str, str | None]:
    return row.debug_expected if debug and row.debug_expected else row.expected


def resolved_key_policy(template: Json, accepted: str = MEASURED_PCR0) -> tuple[Json, str]:
    """The template's key policy with every token replaced by its deploy-time value, and the build's pin;
    `accepted` is the build resource's AcceptedPcr0 (comma-separated)."""
    role_id = only(template, "AWS::IAM::InstanceProfile")[1]["Properties"]["Roles"][0]["Ref"]
    build_id, _ = only(template, BUILD_TYPE)
    resolver = Resolver(attributes={(role_id, "Arn"): ROLE_ARN, (build_id, "AcceptedPcr0"): accepted})
    _, key = card_key(template)
    policy: Json = _resolve(key["Properties"]["KeyPolicy"], resolver)
    pins = [p for p in policy_pins(policy) if p != ZERO_PCR]
    assert pins == accepted.split(","), pins
    return policy, pins[0]


def policy_pins(policy: Json) -> list[str]:
    (statement,) = [s for s in policy["Statement"] if s.get("Sid") == ATTESTED[1]]
    values = statement["Condition"]["StringEqualsIgnoreCase"][IMAGE_SHA384]
    return list(values) if isinstance(values, list) else [values]


def _resolve(node: Any, resolver: Resolver) -> Any:
    if isinstance(node, list):
        return [_resolve(item, resolver) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and next(iter(node)) in ("Ref", "Fn::GetAtt", "Fn::Join", "Fn::Sub", "Fn::Split"):
        return resolver.evaluate(node)
    return {key: _resolve(value, resolver) for key, value in node.items()}

"""Who may call the emulator: one access key per local principal, mapped to what the key policy sees.

The cloud has an instance role (the producer, the relay and a shell on the parent all use its
credentials), the account's administrators (through IAM) and the account root user. Local mode gives each
its own access key so that who calls matters: the emulator maps the request's access key to a `Caller`
and evaluates the key policy for it. An unknown access key is refused, as AWS refuses an invalid token.
Access key ids are 20 upper-case letters and digits, like AWS's (moto finds them in the signature by that
shape). Local mode only; the secrets are fixed and worthless outside the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.keypolicy.document import account_root_arn
from app.keypolicy.evaluator import Caller

ACCOUNT_ID: Final = "123456789012"  # moto's default account (moto.core.DEFAULT_ACCOUNT_ID)
INSTANCE_ROLE_NAME: Final = "nitro-enclave-demo-instance-role"
INSTANCE_ROLE_ARN: Final = f"arn:aws:iam::{ACCOUNT_ID}:role/{INSTANCE_ROLE_NAME}"
ADMINISTRATOR_ARN: Final = f"arn:aws:iam::{ACCOUNT_ID}:user/local-administrator"
ACCOUNT_ROOT_ARN: Final = account_root_arn(ACCOUNT_ID)
# What AWS's AdministratorAccess managed policy grants: everything, through IAM.
ADMINISTRATOR_ACCESS: Final[Mapping[str, Any]] = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class LocalPrincipal:
    name: str
    access_key_id: str
    secret_access_key: str
    caller: Caller


# The role's identity-based policies grant no KMS action, as in the template (tests/infra checks that no
# IAM statement mentions KMS): everything it may do with the key comes from the key policy.
INSTANCE_ROLE: Final = LocalPrincipal(
    name="instance role",
    access_key_id="LOCALINSTANCEROLE001",
    secret_access_key="local-instance-role-secret",  # noqa: S106 - emulator-only credential
    caller=Caller(
        arn=f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{INSTANCE_ROLE_NAME}/i-0123456789local",
        account=ACCOUNT_ID,
        principal_arns=frozenset({INSTANCE_ROLE_ARN}),
    ),
)
ADMINISTRATOR: Final = LocalPrincipal(
    name="administrator",
    access_key_id="LOCALADMINISTRATOR01",
    secret_access_key="local-administrator-secret",  # noqa: S106 - emulator-only credential
    caller=Caller(
        arn=ADMINISTRATOR_ARN,
        account=ACCOUNT_ID,
        principal_arns=frozenset({ADMINISTRATOR_ARN}),
        identity_policies=(ADMINISTRATOR_ACCESS,),
    ),
)
ACCOUNT_ROOT: Final = LocalPrincipal(
    name="account root user",
    access_key_id="LOCALACCOUNTROOT0001",
    secret_access_key="local-account-root-secret",  # noqa: S106 - emulator-only credential
    caller=Caller(
        arn=ACCOUNT_ROOT_ARN,
        account=ACCOUNT_ID,
        principal_arns=frozenset({ACCOUNT_ROOT_ARN}),
        is_account_root=True,
    ),
)
LOCAL_PRINCIPALS: Final = (INSTANCE_ROLE, ADMINISTRATOR, ACCOUNT_ROOT)


def by_access_key(principals: tuple[LocalPrincipal, ...] = LOCAL_PRINCIPALS) -> dict[str, Caller]:
    """The emulator's table: access key id -> the caller the key policy is evaluated for."""
    return {p.access_key_id: p.caller for p in principals}

"""Decides a KMS request the way KMS does for a key in the caller's own account: key policy, then IAM.

Rules, from the IAM User Guide ("Policy evaluation logic", "Determining whether a request is allowed or
denied within an account") and the KMS Developer Guide ("Key policies in AWS KMS", "Allows access to the
AWS account and enables IAM policies"):
1. A statement applies when its Principal names the caller (see `Caller`), its Action/NotAction and
   Resource match, and its Condition holds (`app.keypolicy.conditions`).
2. An applicable Deny in the key policy or in the caller's identity-based policies wins over every Allow
   (explicit deny). A Deny whose Principal names the account applies to every principal of the account.
3. An applicable Allow in the key policy that names the caller itself (its user ARN, its role's ARN) or
   `"*"` allows: KMS needs no IAM policy then.
4. An applicable Allow that names only the account (`arn:aws:iam::<id>:root` or the bare id) delegates to
   IAM: the caller's identity-based policies must allow the action too (the account root user needs none).
5. Otherwise the request is implicitly denied. Without a key policy allow, IAM alone never allows.
Calls that name no key (CreateKey, ListKeys, ...) are decided by rule 2, then identity policies alone.
Grants and cross-account access are not modelled: the stack's role may not create grants, and local mode
has one account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.keypolicy.conditions import holds
from app.keypolicy.document import IMAGE_SHA384, account_root_arn
from app.keypolicy.grammar import Statement, parse_policy

RESOURCE_BASED = "resource-based"
IDENTITY_BASED = "identity-based"


@dataclass(frozen=True)
class Caller:
    """Who signs the request. `arn` is how KMS names it in messages (a role session's assumed-role ARN);
    `principal_arns` what a policy's Principal may name to mean this caller (the role's own ARN)."""

    arn: str
    account: str
    principal_arns: frozenset[str]
    identity_policies: tuple[Mapping[str, Any], ...] = ()
    is_account_root: bool = False


@dataclass(frozen=True)
class Request:
    caller: Caller
    action: str  # "kms:Decrypt"
    resource: str  # the key ARN, or "*" for calls that name no key
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    kind: Literal["allow", "explicit_deny", "implicit_deny"]
    policy_type: str  # RESOURCE_BASED or IDENTITY_BASED: where the deciding statement is (or is missing)
    statement: str | None  # label of the deciding statement; None for an implicit deny


def evaluate(key_policy: Mapping[str, Any] | None, request: Request) -> Decision:
    """Decide `request` against a key policy (None: a call that names no key) and the caller's IAM."""
    identity = _identity_statements(request.caller)
    key_statements = parse_policy(key_policy, resource_policy=True) if key_policy is not None else ()
    for statements, where in ((key_statements, RESOURCE_BASED), (identity, IDENTITY_BASED)):
        deny = _first(statements, request, "Deny")
        if deny is not None:
            return Decision(False, "explicit_deny", where, deny.label)
    if key_policy is None:
        return _identity_decision(identity, request, decided_by=None)
    direct, via_account = _key_allows(key_statements, request)
    if direct is not None:
        return Decision(True, "allow", RESOURCE_BASED, direct.label)
    if via_account is None:
        return Decision(False, "implicit_deny", RESOURCE_BASED, None)
    return _identity_decision(identity, request, decided_by=via_account.label)


def _identity_decision(identity: Sequence[Statement], request: Request, decided_by: str | None) -> Decision:
    where = RESOURCE_BASED if decided_by is not None else IDENTITY_BASED
    if request.caller.is_account_root:
        return Decision(True, "allow", where, decided_by or "account root user")
    allow = _first(identity, request, "Allow")
    if allow is None:
        return Decision(False, "implicit_deny", IDENTITY_BASED, None)
    return Decision(True, "allow", where, decided_by or allow.label)


def _key_allows(
    statements: Iterable[Statement], request: Request
) -> tuple[Statement | None, Statement | None]:
    direct = via_account = None
    for statement in statements:
        if statement.effect != "Allow" or not _applies(statement, request):
            continue
        match = _principal_match(statement, request.caller)
        if match == "direct" and direct is None:
            direct = statement
        elif match == "account" and via_account is None:
            via_account = statement
    return direct, via_account


def _first(statements: Iterable[Statement], request: Request, effect: str) -> Statement | None:
    for statement in statements:
        if statement.effect != effect or not _applies(statement, request):
            continue
        if statement.principals is None or _principal_match(statement, request.caller) is not None:
            return statement
    return None


def _applies(statement: Statement, request: Request) -> bool:
    return (
        statement.matches_action(request.action)
        and statement.matches_resource(request.resource)
        and holds(statement.condition, request.context)
    )


def _principal_match(statement: Statement, caller: Caller) -> Literal["direct", "account"] | None:
    names = statement.principals or ()
    if "*" in names or any(name in caller.principal_arns for name in names):
        return "direct"
    account_names = {caller.account, account_root_arn(caller.account)}
    if any(name in account_names for name in names):
        return "direct" if caller.is_account_root else "account"
    return None


def _identity_statements(caller: Caller) -> tuple[Statement, ...]:
    return tuple(s for p in caller.identity_policies for s in parse_policy(p, resource_policy=False))


def access_denied_message(decision: Decision, request: Request) -> str:
    """KMS's AccessDeniedException wording (IAM's access-denied message format), plus, in brackets, which
    statement decided and the attested image: a local-mode addition that real KMS does not send."""
    head = (
        f"User: {request.caller.arn} is not authorized to perform: {request.action} "
        f"on resource: {request.resource}"
    )
    image = request.context.get(IMAGE_SHA384)
    attested = f"; attested {IMAGE_SHA384} {image}" if image else f"; no {IMAGE_SHA384} in the request"
    if decision.kind == "explicit_deny":
        article = "an" if decision.policy_type == IDENTITY_BASED else "a"
        return (
            f"{head} with an explicit deny in {article} {decision.policy_type} policy "
            f'[local emulator: denied by statement "{decision.statement}"{attested}]'
        )
    return (
        f"{head} because no {decision.policy_type} policy allows the {request.action} action "
        f"[local emulator: no statement allows it{attested}]"
    )

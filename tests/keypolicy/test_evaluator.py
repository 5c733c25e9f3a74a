"""Policy evaluation, one rule per test (IAM "Policy evaluation logic"; KMS "Key policies")."""

from __future__ import annotations

from typing import Any

import pytest

from app.keypolicy.evaluator import Caller, Request, access_denied_message, evaluate
from app.keypolicy.grammar import PolicyGrammarError, parse_policy

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/k"
SESSION = Caller(f"arn:aws:sts::{ACCOUNT}:assumed-role/app/i-1", ACCOUNT, frozenset({ROLE}))
ADMIN_POLICY = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ADMIN = Caller(f"arn:aws:iam::{ACCOUNT}:user/admin", ACCOUNT, frozenset(), (ADMIN_POLICY,))
ROOT_USER = Caller(ROOT, ACCOUNT, frozenset({ROOT}), is_account_root=True)


def allow(sid: str, principal: Any, action: Any, **extra: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Principal": principal, "Action": action, "Resource": "*", **extra}


def deny(sid: str, principal: Any, action: Any, **extra: Any) -> dict[str, Any]:
    return {**allow(sid, principal, action, **extra), "Effect": "Deny"}


def decide(statements: list[dict[str, Any]], caller: Caller, action: str, **context: str) -> tuple[str, Any]:
    decision = evaluate(
        {"Version": "2012-10-17", "Statement": statements}, Request(caller, action, KEY, context)
    )
    return decision.kind, decision.statement


def test_no_applicable_allow_is_an_implicit_deny() -> None:
    assert decide([allow("A", {"AWS": ROLE}, "kms:Encrypt")], SESSION, "kms:Decrypt") == (
        "implicit_deny",
        None,
    )


def test_an_explicit_deny_wins_over_an_allow() -> None:
    statements = [allow("A", {"AWS": ROLE}, "kms:Decrypt"), deny("D", "*", "kms:Decrypt")]
    assert decide(statements, SESSION, "kms:Decrypt") == ("explicit_deny", "D")


def test_a_deny_in_the_identity_policy_wins_too() -> None:
    caller = Caller(
        SESSION.arn,
        ACCOUNT,
        SESSION.principal_arns,
        ({"Statement": [{"Effect": "Deny", "Action": "kms:*", "Resource": "*"}]},),
    )
    decision = evaluate(
        {"Statement": [allow("A", {"AWS": ROLE}, "kms:Decrypt")]}, Request(caller, "kms:Decrypt", KEY)
    )
    assert (decision.kind, decision.policy_type) == ("explicit_deny", "identity-based")


def test_a_role_arn_principal_matches_the_roles_sessions_without_any_iam_policy() -> None:
    assert decide([allow("A", {"AWS": ROLE}, "kms:Decrypt")], SESSION, "kms:Decrypt") == ("allow", "A")


def test_the_account_root_principal_delegates_to_iam() -> None:
    statements = [allow("Admin", {"AWS": ROOT}, "kms:*")]
    assert decide(statements, ADMIN, "kms:PutKeyPolicy") == ("allow", "Admin")
    assert decide(statements, SESSION, "kms:PutKeyPolicy") == ("implicit_deny", None)


def test_a_bare_account_id_is_the_account_too() -> None:
    assert decide([allow("Admin", {"AWS": ACCOUNT}, "kms:*")], ADMIN, "kms:Decrypt") == ("allow", "Admin")


def test_the_account_root_user_needs_no_iam_policy() -> None:
    assert decide([allow("Admin", {"AWS": ROOT}, "kms:Put*")], ROOT_USER, "kms:PutKeyPolicy") == (
        "allow",
        "Admin",
    )


def test_iam_alone_never_allows_without_a_key_policy_statement() -> None:
    assert decide([allow("A", {"AWS": ROLE}, "kms:Encrypt")], ADMIN, "kms:Decrypt") == ("implicit_deny", None)


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::999999999999:root", "*"]}])
def test_a_star_principal_matches_everyone(principal: Any) -> None:
    assert decide([deny("D", principal, "kms:Decrypt")], ADMIN, "kms:Decrypt") == ("explicit_deny", "D")


def test_another_accounts_principal_does_not_match() -> None:
    statements = [allow("A", {"AWS": "arn:aws:iam::999999999999:role/app"}, "kms:Decrypt")]
    assert decide(statements, SESSION, "kms:Decrypt") == ("implicit_deny", None)


@pytest.mark.parametrize(
    ("pattern", "action", "applies"),
    [
        ("kms:Decrypt", "kms:Decrypt", True),
        ("KMS:decrypt", "kms:Decrypt", True),
        ("kms:Get*", "kms:GetKeyPolicy", True),
        ("kms:Get*", "kms:PutKeyPolicy", False),
        ("kms:*Key", "kms:DescribeKey", True),
        ("kms:?ecrypt", "kms:Decrypt", True),
        ("*", "kms:Decrypt", True),
    ],
)
def test_action_wildcards_and_case(pattern: str, action: str, applies: bool) -> None:
    kind, _ = decide([allow("A", {"AWS": ROLE}, pattern)], SESSION, action)
    assert (kind == "allow") is applies


def test_not_action_applies_to_every_other_action() -> None:
    statements = [
        {
            "Sid": "A",
            "Effect": "Allow",
            "Principal": {"AWS": ROLE},
            "NotAction": "kms:Decrypt",
            "Resource": "*",
        }
    ]
    assert decide(statements, SESSION, "kms:Encrypt") == ("allow", "A")
    assert decide(statements, SESSION, "kms:Decrypt") == ("implicit_deny", None)


def test_a_resource_that_names_another_key_does_not_apply() -> None:
    statement = {
        **allow("A", {"AWS": ROLE}, "kms:Decrypt"),
        "Resource": "arn:aws:kms:us-east-1:111122223333:key/other",
    }
    assert decide([statement], SESSION, "kms:Decrypt") == ("implicit_deny", None)


def test_a_condition_that_does_not_hold_makes_the_statement_not_apply() -> None:
    statements = [
        allow(
            "A", {"AWS": ROLE}, "kms:Decrypt", Condition={"StringEquals": {"kms:EncryptionContext:app": "x"}}
        )
    ]
    assert decide(statements, SESSION, "kms:Decrypt", **{"kms:EncryptionContext:app": "x"}) == ("allow", "A")
    assert decide(statements, SESSION, "kms:Decrypt") == ("implicit_deny", None)


def test_a_statement_without_sid_is_named_by_its_position() -> None:
    statement = deny("", "*", "kms:Decrypt")
    del statement["Sid"]
    assert decide([allow("A", {"AWS": ROLE}, "kms:Decrypt"), statement], SESSION, "kms:Decrypt") == (
        "explicit_deny",
        "statement #2",
    )


def test_a_call_that_names_no_key_is_decided_by_identity_policies() -> None:
    assert evaluate(None, Request(ADMIN, "kms:CreateKey", "*")).allowed
    assert not evaluate(None, Request(SESSION, "kms:ListKeys", "*")).allowed


def test_the_refusal_has_kmss_wording_and_names_the_statement() -> None:
    request = Request(SESSION, "kms:Decrypt", KEY)
    decision = evaluate({"Statement": [deny("DenyIt", "*", "kms:Decrypt")]}, request)
    message = access_denied_message(decision, request)
    assert message.startswith(
        f"User: {SESSION.arn} is not authorized to perform: kms:Decrypt on resource: {KEY} "
        "with an explicit deny in a resource-based policy ["
    )
    assert 'denied by statement "DenyIt"' in message


def test_an_implicit_refusal_says_no_policy_allows_it() -> None:
    request = Request(SESSION, "kms:Decrypt", KEY)
    message = access_denied_message(
        evaluate({"Statement": [allow("A", {"AWS": ROLE}, "kms:Encrypt")]}, request), request
    )
    assert "because no resource-based policy allows the kms:Decrypt action" in message


@pytest.mark.parametrize(
    "document",
    [
        {"Statement": []},
        {
            "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]
        },  # key policy without Principal
        {"Statement": [{**allow("A", "*", "kms:*"), "NotPrincipal": {"AWS": ROLE}}]},
        {"Statement": [{**allow("A", {"Service": "ec2.amazonaws.com"}, "kms:*")}]},
        {"Statement": [{**allow("A", "*", "kms:*"), "Effect": "Maybe"}]},
        {"Statement": [{**allow("A", "*", "kms:*"), "NotAction": "kms:Decrypt"}]},
        {
            "Statement": [
                allow("A", "*", "kms:*", Condition={"DateLessThan": {"aws:CurrentTime": "2030-01-01"}})
            ]
        },
        {"Statements": []},
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*"}]},  # no Resource
    ],
)
def test_grammar_outside_the_supported_set_is_refused(document: dict[str, Any]) -> None:
    with pytest.raises(PolicyGrammarError):
        parse_policy(document, resource_policy=True)

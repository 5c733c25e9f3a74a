"""Every log group of the stack is encrypted with the stack's log key (a customer managed key, not the card
key) and named under the one prefix that key's policy admits CloudWatch Logs for; nothing else may use it
through a service principal."""

from __future__ import annotations

import fnmatch
import json

from aws_cdk import App, Stack, assertions
from aws_cdk import aws_logs as logs

from infra.constructs.log_key import LOGS_ACTIONS, LogKey
from tests.infra.cfn import PSEUDO, Json, card_key, evaluate, resources

PREFIX = f"/nitro-enclave-demo/{PSEUDO['AWS::StackName']}/"


def log_key(template: Json) -> tuple[str, Json]:
    card_key_id, _ = card_key(template)
    (found,) = [(k, r) for k, r in resources(template, "AWS::KMS::Key").items() if k != card_key_id]
    return found


def logs_statement(key: Json) -> Json:
    (statement,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Service" in s["Principal"]]
    found: Json = statement
    return found


def admitted(template: Json) -> str:
    """The log group ARN pattern the log key's policy admits, evaluated (the template is left untouched)."""
    (pattern,) = logs_statement(log_key(template)[1])["Condition"]["ArnLike"].values()
    return evaluate(pattern)


def test_every_log_group_is_encrypted_with_the_log_key_not_the_card_key(template: Json) -> None:
    key_id, _ = log_key(template)
    groups = resources(template, "AWS::Logs::LogGroup")
    assert len(groups) >= 4  # flow logs, the hosts', the build's and the build resource's function
    for logical_id, group in groups.items():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}, logical_id


def test_every_function_logs_to_a_group_of_the_stack(template: Json) -> None:
    # Without LoggingConfig a function logs to /aws/lambda/<name>, a group Lambda creates on its first run:
    # not the log key, no retention, left behind by destroy. CDK's bucket auto-delete function included.
    groups = resources(template, "AWS::Logs::LogGroup")
    functions = resources(template, "AWS::Lambda::Function")
    assert any("AutoDeleteObjects" in logical_id for logical_id in functions)
    for logical_id, function in functions.items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(target, dict), logical_id
        assert set(target) == {"Ref"}, logical_id
        group = groups[target["Ref"]]
        assert group["DeletionPolicy"] == "Delete", logical_id
        assert "RetentionInDays" in group["Properties"], logical_id


def test_the_auto_delete_handler_logs_to_a_group_of_the_stack(template: Json) -> None:
    (function,) = [f for k, f in resources(template, "AWS::Lambda::Function").items() if "AutoDelete" in k]
    group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    key_id, _ = log_key(template)
    group = resources(template, "AWS::Logs::LogGroup")[group_id]
    assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert evaluate(group["Properties"]["LogGroupName"]).startswith(PREFIX)


def test_the_log_key_rotates_and_goes_with_the_stack(template: Json) -> None:
    _, key = log_key(template)
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Delete"


def test_cloudwatch_logs_may_use_the_key_for_this_stacks_groups_only(template: Json) -> None:
    statement = logs_statement(log_key(template)[1])
    assert evaluate(statement["Principal"]["Service"]) == f"logs.{PSEUDO['AWS::Region']}.amazonaws.com"
    assert statement["Action"] == list(LOGS_ACTIONS)
    (pattern,) = statement["Condition"]["ArnLike"].values()
    assert list(statement["Condition"]["ArnLike"]) == ["kms:EncryptionContext:aws:logs:arn"]
    region, account = PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
    assert evaluate(pattern) == f"arn:aws:logs:{region}:{account}:log-group:{PREFIX}*"


def test_every_log_group_name_is_one_the_key_policy_admits(template: Json) -> None:
    pattern = admitted(template)
    region, account = PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
    for logical_id, group in resources(template, "AWS::Logs::LogGroup").items():
        name = evaluate(group["Properties"]["LogGroupName"])
        assert name.startswith(PREFIX), (logical_id, name)
        assert fnmatch.fnmatchcase(f"arn:aws:logs:{region}:{account}:log-group:{name}", pattern), name


def test_a_log_group_of_another_stack_is_not_admitted(template: Json) -> None:
    pattern = admitted(template)
    region, account = PSEUDO["AWS::Region"], PSEUDO["AWS::AccountId"]
    for name in ("/nitro-enclave-demo/OtherStack/Observability/LogGroup", "/aws/lambda/anything"):
        assert not fnmatch.fnmatchcase(f"arn:aws:logs:{region}:{account}:log-group:{name}", pattern)


def test_no_service_principal_may_use_the_card_key(template: Json) -> None:
    _, key = card_key(template)
    assert "Service" not in json.dumps(key["Properties"]["KeyPolicy"])


def test_a_log_group_added_anywhere_later_is_encrypted_and_renamed_under_the_prefix() -> None:
    # Whoever adds a log group (a construct of a later change, a name chosen elsewhere) gets both.
    app = App()
    stack = Stack(app, "Other")
    LogKey(stack, "LogKey")
    logs.LogGroup(stack, "Added", log_group_name="/somewhere/else")
    template: Json = dict(assertions.Template.from_stack(stack).to_json())
    (group,) = resources(template, "AWS::Logs::LogGroup").values()
    assert "KmsKeyId" in group["Properties"]
    assert evaluate(group["Properties"]["LogGroupName"]) == f"{PREFIX}Added"

"""Condition operators, one IAM rule per test (IAM User Guide, "Condition operators")."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from app.keypolicy.conditions import UnsupportedCondition, holds, parse_condition

KEY = "kms:RecipientAttestation:ImageSha384"


def check(condition: Mapping[str, object], context: dict[str, str]) -> bool:
    return holds(parse_condition(condition), context)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("StringEquals", "abc", True),
        ("StringEquals", "ABC", False),
        ("StringNotEquals", "ABC", True),
        ("StringEqualsIgnoreCase", "ABC", True),
        ("StringNotEqualsIgnoreCase", "ABC", False),
        ("StringLike", "a*", True),
        ("StringLike", "A*", False),
        ("StringLike", "a?c", True),
        ("StringLike", "a?", False),
        ("StringNotLike", "x*", True),
    ],
)
def test_string_operators_compare_as_documented(operator: str, value: str, expected: bool) -> None:
    assert check({operator: {KEY: value}}, {KEY: "abc"}) is expected


def test_several_values_for_one_key_are_or_for_a_positive_operator() -> None:
    assert check({"StringEquals": {KEY: ["x", "abc"]}}, {KEY: "abc"})


def test_a_negated_operator_with_several_values_holds_only_if_none_matches() -> None:
    assert not check({"StringNotEqualsIgnoreCase": {KEY: ["x", "ABC"]}}, {KEY: "abc"})
    assert check({"StringNotEqualsIgnoreCase": {KEY: ["x", "y"]}}, {KEY: "abc"})


def test_several_keys_under_one_operator_must_all_hold() -> None:
    condition = {"StringEquals": {"a": "1", "b": "2"}}
    assert check(condition, {"a": "1", "b": "2"})
    assert not check(condition, {"a": "1", "b": "3"})


def test_several_operators_must_all_hold() -> None:
    condition = {"StringEquals": {"a": "1"}, "StringEqualsIgnoreCase": {"b": "X"}}
    assert check(condition, {"a": "1", "b": "x"})
    assert not check(condition, {"a": "2", "b": "x"})


@pytest.mark.parametrize("operator", ["StringEquals", "StringEqualsIgnoreCase", "StringLike", "Bool"])
def test_a_missing_key_makes_a_positive_operator_false(operator: str) -> None:
    assert not check({operator: {KEY: "*"}}, {})


@pytest.mark.parametrize("operator", ["StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike"])
def test_a_missing_key_makes_a_negated_operator_true(operator: str) -> None:
    assert check({operator: {KEY: "abc"}}, {})


def test_if_exists_makes_a_missing_key_true_and_still_compares_a_present_one() -> None:
    assert check({"StringEqualsIfExists": {KEY: "abc"}}, {})
    assert not check({"StringEqualsIfExists": {KEY: "abc"}}, {KEY: "x"})


def test_null_tests_presence_only() -> None:
    assert check({"Null": {KEY: "true"}}, {})
    assert not check({"Null": {KEY: "true"}}, {KEY: ""})
    assert check({"Null": {KEY: "false"}}, {KEY: "anything"})


def test_bool_compares_true_and_false_and_accepts_json_booleans() -> None:
    assert check({"Bool": {"aws:SecureTransport": True}}, {"aws:SecureTransport": "true"})
    assert not check({"Bool": {"aws:SecureTransport": "true"}}, {"aws:SecureTransport": "false"})


def test_condition_key_names_ignore_case() -> None:
    assert check({"StringEquals": {"KMS:EncryptionContext:app": "v"}}, {"kms:encryptioncontext:APP": "v"})


def test_an_empty_condition_holds() -> None:
    assert check({}, {})


@pytest.mark.parametrize(
    "condition",
    [
        {"NumericLessThan": {"k": "1"}},
        {"ForAnyValue:StringEquals": {"k": "1"}},
        {"StringEquals": {}},
        {"StringEquals": {"k": []}},
        {"StringEquals": {"k": 1}},
        {"Null": {"k": "maybe"}},
    ],
)
def test_unsupported_grammar_is_refused_by_name(condition: Mapping[str, object]) -> None:
    with pytest.raises(UnsupportedCondition):
        parse_condition(condition)

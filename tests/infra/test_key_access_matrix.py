"""Issue 10's access matrix against the synthesized key policy, in the default, `enclave_pcr0=` and
`enclave_debug=true` forms; and proof that the matrix notices a changed condition key, operator or principal.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace

import pytest

from app.keypolicy.document import key_policy
from app.shared import deployment
from infra.settings import ZERO_PCR
from tests.infra.cfn import Json
from tests.infra.conftest import Synth
from tests.infra.key_matrix import (
    ATTESTED,
    CONTEXT,
    DENY_UNATTESTED,
    MATRIX,
    MEASURED_PCR0,
    OTHER_PCR0,
    PREVIOUS_PCR0,
    ROLE,
    ROLE_ARN,
    ROOT_ARN,
    Row,
    expected,
    resolved_key_policy,
)

VARIANTS = ("default", "given_pcr0", "debug")


def _policy(variant: str, request: pytest.FixtureRequest) -> tuple[Json, str]:
    synth: Synth = request.getfixturevalue(variant)
    return resolved_key_policy(synth.template)


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: row.name)
@pytest.mark.parametrize("variant", VARIANTS)
def test_access_matrix(variant: str, row: Row, request: pytest.FixtureRequest) -> None:
    policy, pin = _policy(variant, request)
    assert row.outcome(policy, pin) == expected(row, debug=variant == "debug")


def test_during_a_roll_both_measurements_decrypt_and_nothing_else(default: Synth) -> None:
    policy, pin = resolved_key_policy(default.template, f"{MEASURED_PCR0},{PREVIOUS_PCR0}")
    decrypt = Row("roll", ROLE, "kms:Decrypt", None, CONTEXT, ATTESTED)
    for image, outcome in ((pin, ATTESTED), (PREVIOUS_PCR0, ATTESTED), (OTHER_PCR0, DENY_UNATTESTED)):
        assert replace(decrypt, image=image).outcome(policy, pin) == outcome, image


def _single_lists_as_strings(node: object) -> object:
    """CDK writes a one-element list as a plain string; IAM treats both the same."""
    if isinstance(node, list):
        items = [_single_lists_as_strings(item) for item in node]
        return items[0] if len(items) == 1 else items
    if isinstance(node, dict):
        return {key: _single_lists_as_strings(value) for key, value in node.items()}
    return node


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_template_carries_the_document_local_mode_enforces(
    variant: str, request: pytest.FixtureRequest
) -> None:
    policy, pin = _policy(variant, request)
    pins = [pin, ZERO_PCR] if variant == "debug" else [pin]
    local = key_policy(
        account_root=ROOT_ARN,
        role_arn=ROLE_ARN,
        accepted_pcr0=pins,
        encryption_context=deployment.ENCRYPTION_CONTEXT,
    )
    assert _single_lists_as_strings(policy) == _single_lists_as_strings(local)


def _operator_variants(operator: str) -> list[str]:
    """The operator negated, and with IgnoreCase toggled (a StringLike for a literal would be an
    equivalent mutant: same meaning, so no test could notice it)."""
    negated = (
        operator.replace("StringNot", "String")
        if "Not" in operator
        else operator.replace("String", "StringNot")
    )
    case = operator.removesuffix("IgnoreCase") if operator.endswith("IgnoreCase") else operator + "IgnoreCase"
    return [negated, case]


def mutations(policy: Json) -> Iterator[tuple[str, Json]]:
    """Every condition key misspelt, every operator changed, every principal swapped, one at a time."""
    for index, statement in enumerate(policy["Statement"]):
        sid = statement["Sid"]
        for operator, block in statement.get("Condition", {}).items():
            for key in block:
                mutant = copy.deepcopy(policy)
                mutated = mutant["Statement"][index]["Condition"][operator]
                mutated[key + "x"] = mutated.pop(key)
                yield f"{sid}: key {key} -> {key}x", mutant
            for other in _operator_variants(operator):
                mutant = copy.deepcopy(policy)
                condition = mutant["Statement"][index]["Condition"]
                moved = condition.pop(operator)
                condition[other] = {**condition.get(other, {}), **moved}
                yield f"{sid}: {operator} -> {other}", mutant
        for other in (ROLE_ARN, ROOT_ARN, "*"):
            if statement["Principal"]["AWS"] != other:
                mutant = copy.deepcopy(policy)
                mutant["Statement"][index]["Principal"] = {"AWS": other}
                yield f"{sid}: principal -> {other}", mutant


def _mutation_cases() -> list[tuple[str, str]]:

    shape = key_policy(
        account_root=ROOT_ARN,
        role_arn=ROLE_ARN,
        accepted_pcr0=[MEASURED_PCR0],
        encryption_context=deployment.ENCRYPTION_CONTEXT,
    )
    return [(variant, name) for variant in ("default", "debug") for name, _ in mutations(shape)]


@pytest.mark.parametrize(("variant", "mutation"), _mutation_cases(), ids=str)
def test_every_mutation_of_the_deployed_policy_fails_a_matrix_row(
    variant: str, mutation: str, request: pytest.FixtureRequest
) -> None:
    policy, pin = _policy(variant, request)
    mutant = dict(mutations(policy))[mutation]
    debug = variant == "debug"
    changed = [row.name for row in MATRIX if row.outcome(mutant, pin) != expected(row, debug=debug)]
    assert changed, f"no matrix row notices the mutation {mutation!r}"


def test_the_three_mutations_of_the_note_each_fail_a_named_row(default: Synth) -> None:
    policy, pin = resolved_key_policy(default.template)
    mutants = dict(mutations(policy))
    by_name = {row.name: row for row in MATRIX}
    image = "kms:RecipientAttestation:ImageSha384"
    cases = {  # a condition key typo, an operator change, a principal change
        f"AttestedEnclaveDecrypts: key {image} -> {image}x": "role Decrypt, pinned PCR0",
        "DenyDecryptOutsideThePinnedEnclave: StringNotEqualsIgnoreCase -> StringEqualsIgnoreCase": (
            "role Decrypt without Recipient"
        ),
        "AttestedEnclaveDecrypts: principal -> *": "administrator Decrypt, pinned PCR0",
    }
    for mutation, row_name in cases.items():
        row = by_name[row_name]
        assert row.outcome(policy, pin) == row.expected
        assert row.outcome(mutants[mutation], pin) != row.expected, mutation

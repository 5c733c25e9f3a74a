"""The one check of how programs name the card key (app.keypolicy.key_arn): a full key ARN only, and the same
pattern means the same thing to bash's [[ =~ ]] (POSIX ERE), where the host's demo.env reader can use it."""

from __future__ import annotations

import subprocess

import pytest

from app.keypolicy.key_arn import KEY_ARN_PATTERN, KeyArnError, require_key_arn

ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REFUSED = [
    "alias/nitro-enclave-demo",
    "arn:aws:kms:eu-west-1:111122223333:alias/nitro-enclave-demo",
    "1234abcd-12ab-34cd-56ef-1234567890ab",
    f"{ARN} ",
    f"{ARN}$(id)",
    ARN.upper(),
    ARN.replace("key/", "key/mrk-"),
    "",
]


@pytest.mark.parametrize(
    "arn", [ARN, ARN.replace("arn:aws:", "arn:aws-us-gov:").replace("eu-west-1", "us-gov-west-1")]
)
def test_a_full_key_arn_is_returned_as_given(arn: str) -> None:
    assert require_key_arn(arn) == arn


@pytest.mark.parametrize("value", REFUSED)
def test_anything_else_is_refused(value: str) -> None:
    with pytest.raises(KeyArnError):
        require_key_arn(value)


def test_the_alias_refusal_says_why() -> None:
    with pytest.raises(KeyArnError, match=r"kms:UpdateAlias and kms:CreateKey .* \(alias redirection\)"):
        require_key_arn("alias/nitro-enclave-demo")


def test_a_key_in_another_region_is_refused() -> None:
    with pytest.raises(KeyArnError, match="names a key in eu-west-1, but this program runs in us-east-1"):
        require_key_arn(ARN, region="us-east-1")


@pytest.mark.parametrize(("value", "admitted"), [(ARN, True), *((v, False) for v in REFUSED if v)])
def test_bash_reads_the_pattern_the_same_way(value: str, admitted: bool) -> None:
    script = 'if [[ "$1" =~ ^($2)$ ]]; then echo yes; else echo no; fi'
    answer = subprocess.run(
        ["/bin/bash", "-c", script, "check", value, KEY_ARN_PATTERN],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert answer == ("yes" if admitted else "no")

from __future__ import annotations

from pathlib import Path

import pytest

from app.keypolicy.key_arn import KeyArnError
from app.producer.config import resolve
from app.shared.settings import DEFAULT_REGION, SettingsError

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/0987dcba-09fe-87dc-65ba-ab0987654321"
ENV = {
    "CARDS_QUEUE_URL": "http://env/cards",
    "RESULTS_QUEUE_URL": "http://env/results",
    "AWS_REGION": "eu-west-1",
    "KMS_KEY_ID": KEY_ARN,
}


def test_environment_fills_what_options_leave_out() -> None:
    config = resolve(["--count", "3"], ENV)
    assert (config.queue_url, config.results_queue_url, config.region) == (
        "http://env/cards",
        "http://env/results",
        "eu-west-1",
    )


def test_options_win_over_environment() -> None:
    config = resolve(["--queue-url", "http://opt/cards", "--key-id", OTHER_KEY_ARN], ENV)
    assert (config.queue_url, config.key_id) == ("http://opt/cards", OTHER_KEY_ARN)


def test_defaults_apply_last() -> None:
    key = KEY_ARN.replace("eu-west-1", DEFAULT_REGION)
    config = resolve([], {"CARDS_QUEUE_URL": "http://env/cards", "KMS_KEY_ID": key})
    assert (config.region, config.count, config.wait, config.cards_file) == (DEFAULT_REGION, 1, False, None)


@pytest.mark.parametrize(
    "alias", ["alias/nitro-enclave-demo", "arn:aws:kms:eu-west-1:111122223333:alias/nitro-enclave-demo"]
)
def test_an_alias_is_refused_naming_alias_redirection(alias: str) -> None:
    with pytest.raises(KeyArnError, match=r"KMS_KEY_ID is an alias .*alias redirection"):
        resolve([], {**ENV, "KMS_KEY_ID": alias})


def test_an_alias_given_as_an_option_is_refused_too() -> None:
    with pytest.raises(KeyArnError, match="alias redirection"):
        resolve(["--key-id", "alias/nitro-enclave-demo"], ENV)


@pytest.mark.parametrize(
    "value",
    [
        "1234abcd-12ab-34cd-56ef-1234567890ab",  # a bare key id
        "arn:aws:kms:eu-west-1:111122223333:key/1234ABCD-12AB-34CD-56EF-1234567890AB",
        "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\n",
        "arn:aws:kms:eu-west-1:1111222233:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        "arn:aws:kms:eu-west-1:111122223333:key/$(touch /tmp/x)",
    ],
)
def test_anything_but_a_full_key_arn_is_refused(value: str) -> None:
    with pytest.raises(KeyArnError, match="must be the key's full ARN"):
        resolve([], {**ENV, "KMS_KEY_ID": value})


def test_no_key_is_refused_there_is_no_default_alias() -> None:
    with pytest.raises(KeyArnError, match="KMS_KEY_ID is not set"):
        resolve([], {key: value for key, value in ENV.items() if key != "KMS_KEY_ID"})


def test_a_key_of_another_region_is_refused() -> None:
    with pytest.raises(KeyArnError, match="names a key in eu-west-1, but this program runs in us-east-2"):
        resolve(["--region", "us-east-2"], ENV)


def test_encryption_context_comes_from_the_environment() -> None:
    config = resolve([], {**ENV, "ENCRYPTION_CONTEXT": '{"app": "x", "stage": "test"}'})
    assert config.encryption_context == {"app": "x", "stage": "test"}


def test_missing_cards_queue_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="CARDS_QUEUE_URL"):
        resolve([], {})


def test_wait_needs_a_results_queue() -> None:
    with pytest.raises(SettingsError, match="RESULTS_QUEUE_URL"):
        resolve(["--wait"], {"CARDS_QUEUE_URL": "http://env/cards"})


def test_count_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="--count"):
        resolve(["--count", "0"], ENV)


def test_cards_file_is_a_path() -> None:
    assert resolve(["--cards-file", "x.txt"], ENV).cards_file == Path("x.txt")

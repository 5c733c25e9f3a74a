from __future__ import annotations

from pathlib import Path

import pytest

from app.producer.config import resolve
from app.shared.settings import DEFAULT_KEY_ALIAS, SettingsError

ENV = {
    "CARDS_QUEUE_URL": "http://env/cards",
    "RESULTS_QUEUE_URL": "http://env/results",
    "AWS_REGION": "eu-west-1",
}


def test_environment_fills_what_options_leave_out() -> None:
    config = resolve(["--count", "3"], ENV)
    assert (config.queue_url, config.results_queue_url, config.region) == (
        "http://env/cards",
        "http://env/results",
        "eu-west-1",
    )


def test_options_win_over_environment() -> None:
    config = resolve(
        ["--queue-url", "http://opt/cards", "--key-id", "alias/other"], {**ENV, "KMS_KEY_ID": "k"}
    )
    assert (config.queue_url, config.key_id) == ("http://opt/cards", "alias/other")


def test_defaults_apply_last() -> None:
    config = resolve([], {"CARDS_QUEUE_URL": "http://env/cards"})
    assert (config.key_id, config.count, config.wait, config.cards_file) == (
        DEFAULT_KEY_ALIAS,
        1,
        False,
        None,
    )


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

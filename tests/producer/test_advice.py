"""Every producer error ends with a next step a person can act on."""

from __future__ import annotations

from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from app.producer import advice
from app.producer.card_file import CardFileError
from app.producer.sender import SendError
from app.shared.settings import SettingsError


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "refused"}}, "SendMessageBatch")


def test_a_missing_setting_points_at_where_settings_come_from() -> None:
    assert advice.for_error(SettingsError("CARDS_QUEUE_URL is not set")) == advice.WHERE_SETTINGS_COME_FROM


def test_access_denied_names_the_code_and_how_to_see_the_caller() -> None:
    step = advice.for_error(client_error("AccessDeniedException"))
    assert step.startswith("AccessDeniedException: ")
    assert "aws sts get-caller-identity" in step


def test_a_missing_queue_points_at_the_stack_outputs() -> None:
    assert "stack outputs" in advice.for_error(client_error("AWS.SimpleQueueService.NonExistentQueue"))


def test_each_known_error_type_has_its_own_step() -> None:
    errors = [
        CardFileError("no card numbers"),
        NoCredentialsError(),
        EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com"),
        SendError("InvalidParameterValue"),
    ]
    steps = [advice.for_error(error) for error in errors]
    assert len(set(steps)) == len(errors)
    assert all("LOG_LEVEL" not in step for step in steps)


def test_an_unknown_code_still_says_what_to_try() -> None:
    assert "LOG_LEVEL=INFO" in advice.for_error(client_error("Throttling"))

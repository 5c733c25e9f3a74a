"""The Provider framework replay: the rules of aws-cdk-lib's custom_resources README ("Provider
Framework"), with toy handlers in place of the stack's."""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.provider import CustomResourceFailed, Provider, UserFunction

RESOURCE = {"Type": "Custom::EnclaveImageBuild"}


def function(handler: Any) -> UserFunction:
    return UserFunction("Fn", handler, {})


def provider(on_event: Any, is_complete: Any = None) -> Provider:
    return Provider(function(on_event), function(is_complete) if is_complete else None, "stack-id", 0.0, 5.0)


def test_create_defaults_the_physical_id_to_the_request_id_and_merges_is_completes_data() -> None:
    seen: list[dict[str, Any]] = []

    def is_complete(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"IsComplete": len(seen) == 3, "Data": {"Pcr0": "ab"} if len(seen) == 3 else {}}

    response = provider(lambda e, _c: {"Data": {"Started": "yes"}, "BuildId": "b1"}, is_complete).request(
        "Create", "Build", RESOURCE, ResourceProperties={"SourceHash": "h"}
    )
    assert response.physical_id == seen[0]["RequestId"]
    assert dict(response.data) == {"Started": "yes", "Pcr0": "ab"}
    assert seen[0]["BuildId"] == "b1"  # on-event's other fields reach is-complete
    assert seen[0]["ResourceProperties"] == {"SourceHash": "h"}


def test_data_before_completion_is_refused() -> None:
    with pytest.raises(CustomResourceFailed, match='"Data" is not allowed'):
        provider(lambda e, _c: {}, lambda e, _c: {"IsComplete": False, "Data": {"A": "1"}}).request(
            "Create", "Build", RESOURCE, ResourceProperties={}
        )


def test_a_delete_may_not_change_the_physical_id() -> None:
    with pytest.raises(CustomResourceFailed, match="cannot change the physical resource ID"):
        provider(lambda e, _c: {"PhysicalResourceId": "other"}).request(
            "Delete", "Build", RESOURCE, ResourceProperties={}, PhysicalResourceId="b1"
        )


def test_an_update_keeps_the_physical_id_unless_the_handler_returns_another() -> None:
    same = provider(lambda e, _c: {}).request(
        "Update", "Build", RESOURCE, ResourceProperties={}, OldResourceProperties={}, PhysicalResourceId="b1"
    )
    assert same.physical_id == "b1"


def test_a_handlers_exception_is_the_failed_responses_reason() -> None:
    def on_event(_event: dict[str, Any], _context: Any) -> dict[str, Any]:
        raise RuntimeError("build b2 FAILED in BUILD: exit status 1; log: https://console.example/log")

    with pytest.raises(CustomResourceFailed, match="build b2 FAILED in BUILD"):
        provider(on_event).request("Create", "Build", RESOURCE, ResourceProperties={})


def test_waiting_past_the_total_timeout_fails_as_the_framework_does() -> None:
    slow = Provider(
        function(lambda e, _c: {}), function(lambda e, _c: {"IsComplete": False}), "s", 0.01, 0.05
    )
    with pytest.raises(CustomResourceFailed, match="Operation timed out"):
        slow.request("Create", "Build", RESOURCE, ResourceProperties={})

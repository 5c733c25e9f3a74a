"""The custom resource replay (rehearsal/provider.py): the request goes to the function, the answer is what
it PUTs to the stand-in ResponseURL, checked against the CloudFormation User Guide's "Custom resource
response objects"; toy functions in place of the stack's."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from rehearsal.provider import CustomResource, CustomResourceFailed, Function, ResponseEndpoint

RESOURCE = {"Type": "Custom::EnclaveImageBuild"}


@pytest.fixture
def endpoint() -> Iterator[ResponseEndpoint]:
    with ResponseEndpoint().serving() as serving:
        yield serving


def put(event: dict[str, Any], body: bytes, content_type: str = "") -> None:
    request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT")  # noqa: S310
    request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - the local stand-in
        pass


def answer(event: dict[str, Any], **fields: Any) -> bytes:
    base = {k: event[k] for k in ("StackId", "RequestId", "LogicalResourceId")}
    return json.dumps({"Status": "SUCCESS", "PhysicalResourceId": "b1", **base, **fields}).encode()


def resource(endpoint: ResponseEndpoint, handler: Any) -> CustomResource:
    return CustomResource(Function("Fn", handler, {}, 5.0), endpoint, "stack-id")


def create(endpoint: ResponseEndpoint, handler: Any) -> Any:
    return resource(endpoint, handler).request("Create", "Build", RESOURCE, ResourceProperties={"A": "1"})


def test_the_function_gets_the_request_and_its_put_is_the_answer(endpoint: ResponseEndpoint) -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        seen.append(event)
        assert 0 < context.get_remaining_time_in_millis() <= 5000
        put(event, answer(event, Data={"Pcr0": "ab"}))

    response = create(endpoint, handler)
    assert (response.physical_id, dict(response.data)) == ("b1", {"Pcr0": "ab"})
    (event,) = seen
    assert set(event) >= {"RequestType", "RequestId", "ResponseURL", "StackId", "LogicalResourceId"}
    assert event["ResourceProperties"] == {"A": "1"}


def test_a_failed_answer_is_its_reason(endpoint: ResponseEndpoint) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        put(event, answer(event, Status="FAILED", Reason="build b2 FAILED in BUILD"))

    with pytest.raises(CustomResourceFailed, match=r"^build b2 FAILED in BUILD$"):
        create(endpoint, handler)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Status": "FAILED"}, "without a Reason"),
        ({"Status": "DONE"}, "neither SUCCESS nor FAILED"),
        ({"RequestId": "other"}, "RequestId is not the request's"),
        ({"PhysicalResourceId": ""}, "PhysicalResourceId must be"),
        ({"PhysicalResourceId": "p" * 1025}, "PhysicalResourceId must be"),
        ({"Data": {"A": 1}}, "Data must be an object of strings"),
        ({"NoEcho": "no"}, "NoEcho must be a boolean"),
        ({"Extra": "x"}, "fields CloudFormation does not define"),
        ({"Reason": "r" * 5000}, "over 4096"),
    ],
)
def test_a_malformed_answer_is_refused(
    endpoint: ResponseEndpoint, fields: dict[str, Any], message: str
) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        put(event, answer(event, **fields))

    with pytest.raises(CustomResourceFailed, match=message):
        create(endpoint, handler)


def test_a_content_type_the_url_is_not_signed_for_is_refused(endpoint: ResponseEndpoint) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        put(event, answer(event), content_type="application/json")

    with pytest.raises(CustomResourceFailed, match="Content-Type"):
        create(endpoint, handler)


@pytest.mark.parametrize("times", [0, 2])
def test_exactly_one_answer_is_expected(endpoint: ResponseEndpoint, times: int) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        for _ in range(times):
            put(event, answer(event))

    with pytest.raises(CustomResourceFailed, match=f"answered {times} times"):
        create(endpoint, handler)


def test_a_function_that_logs_the_response_url_is_refused(endpoint: ResponseEndpoint) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        logging.getLogger("toy").info("event: %s", event)
        put(event, answer(event))

    with pytest.raises(CustomResourceFailed, match="logged the request's ResponseURL"):
        create(endpoint, handler)


def test_a_delete_may_not_change_the_physical_id(endpoint: ResponseEndpoint) -> None:
    def handler(event: dict[str, Any], _context: Any) -> None:
        put(event, answer(event, PhysicalResourceId="other"))

    with pytest.raises(CustomResourceFailed, match="cannot change the physical resource ID"):
        resource(endpoint, handler).request(
            "Delete", "Build", RESOURCE, ResourceProperties={}, PhysicalResourceId="b1"
        )


def test_an_exception_without_an_answer_fails_by_name(endpoint: ResponseEndpoint) -> None:
    def handler(_event: dict[str, Any], _context: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(CustomResourceFailed, match="raised RuntimeError without answering: boom"):
        create(endpoint, handler)

"""The custom resource's one Lambda function end to end: CodeBuild through botocore's Stubber, the answer PUT
to a real HTTPS server (a certificate made here, for 127.0.0.1) standing in for the presigned ResponseURL,
and the function's log records captured: one answer per request, in the shape of the CloudFormation User
Guide's "Custom resource response objects", and the ResponseURL in no log record and no message."""

from __future__ import annotations

import functools
import json
import logging
import ssl
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from infra.build.handler import cfn_response, custom_resource
from infra.build.handler.cfn_response import ResponseNotDelivered
from rehearsal.tls import loopback_identity
from tests.infra.test_enclave_build_handlers import (
    NEW,
    PCR0,
    PROJECT,
    build,
    codebuild,  # noqa: F401 - the fixture
    expect_get,
    expect_start,
    exported,
    request,
)

CANARY = "canary-7f3e9a1c"  # in the ResponseURL's path and signature: must appear in no log record


class Clock:
    """Lambda's context with a remaining time that the waits spend (no real sleeping)."""

    def __init__(self, remaining_s: float) -> None:
        self.remaining_s = remaining_s
        self.slept: list[float] = []

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_s * 1000)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.remaining_s -= seconds


class Endpoint:
    def __init__(self, status: int) -> None:
        self.status = status
        self.puts: list[tuple[str, str | None, bytes]] = []


def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only the server's certificate)."""
    with tempfile.TemporaryDirectory() as directory:
        identity = loopback_identity(Path(directory))
        return identity.server_context(), identity.client_context()


SERVER_TLS, CLIENT_TLS = tls()
SEND = functools.partial(cfn_response.send, context=CLIENT_TLS)


@pytest.fixture
def endpoint() -> Iterator[tuple[Endpoint, str]]:
    """A local stand-in of the presigned S3 URL (https); its URL carries the canary."""
    state = Endpoint(200)

    class Recorder(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.puts.append((self.path, self.headers.get("Content-Type"), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.socket = SERVER_TLS.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/{CANARY}?X-Amz-Signature={CANARY}-sig"
    yield state, url
    server.shutdown()
    server.server_close()


def cloudformation_request(kind: str, url: str, physical_id: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = request(kind, physical_id)
    return {
        **event,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/0",
        "LogicalResourceId": "EnclaveImageBuild",
        "ResourceType": "Custom::EnclaveImageBuild",
    }


def run(event: dict[str, Any], client: Any, clock: Clock) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(
        custom_resource.answer(event, clock, client, sleep=clock.sleep, send=SEND)
    )
    return answer


def test_a_create_starts_waits_and_puts_one_success_with_the_validated_data(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (client, stubber), (state, url) = codebuild, endpoint
    caplog.set_level(logging.DEBUG)
    expect_start(stubber)
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    clock = Clock(900)
    event = cloudformation_request("Create", url)
    sent = run(event, client, clock)
    assert clock.slept == [custom_resource.POLL_INTERVAL_S]
    ((path, content_type, body),) = state.puts
    assert (path, content_type) == (f"/{CANARY}?X-Amz-Signature={CANARY}-sig", "")
    assert json.loads(body) == sent
    assert set(sent) == {
        "Status",
        "PhysicalResourceId",
        "StackId",
        "RequestId",
        "LogicalResourceId",
        "NoEcho",
        "Data",
    }
    assert (sent["Status"], sent["PhysicalResourceId"], sent["Data"]["AcceptedPcr0"]) == (
        "SUCCESS",
        NEW,
        PCR0,
    )
    assert all(sent[k] == event[k] for k in ("StackId", "RequestId", "LogicalResourceId"))
    assert caplog.records  # it does log, and never the URL
    assert CANARY not in caplog.text


def test_a_failed_build_puts_failed_with_its_reason_and_the_build_as_physical_id(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (client, stubber), (_, url) = codebuild, endpoint
    caplog.set_level(logging.DEBUG)
    expect_start(stubber)
    expect_get(stubber, NEW, build(NEW, "FAILED"))
    sent = run(cloudformation_request("Create", url), client, Clock(900))
    assert (sent["Status"], sent["PhysicalResourceId"]) == ("FAILED", NEW)
    assert sent["Reason"].startswith(f"CodeBuild build {NEW} FAILED")
    assert CANARY not in caplog.text + sent["Reason"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PCR0", "A" * 96),
        ("PCR1", "b" * 95),
        ("PCR2", "c" * 97),
        ("EIF_KEY", "eif/x.eif"),
        ("EIF_VERSION", "v1$(touch /tmp/pwned)"),
        ("NITRO_CLI_VERSION", "1.4.2 "),
        ("SOURCE_HASH", "hash"),
        ("PREVIOUS_BUILD_ID", "x"),
    ],
)
def test_a_malformed_exported_value_fails_the_resource_by_name_and_puts_no_data(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
    name: str,
    value: str,
) -> None:
    (client, stubber), (_, url) = codebuild, endpoint
    expect_start(stubber)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(**{name: value})))
    sent = run(cloudformation_request("Create", url), client, Clock(900))
    assert sent["Status"] == "FAILED"
    assert sent["Reason"].startswith(f"the build's exported {name} ")
    assert sent["Data"] == {}


def test_a_quota_refusal_fails_the_create_naming_the_quota(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
) -> None:
    (client, stubber), (_, url) = codebuild, endpoint
    stubber.add_client_error("start_build", service_error_code="AccountLimitExceededException")
    sent = run(cloudformation_request("Create", url), client, Clock(900))
    assert (sent["Status"], sent["PhysicalResourceId"]) == ("FAILED", custom_resource.CREATE_FAILED)
    assert "Concurrently running builds for Linux/Medium environment" in sent["Reason"]
    assert "request-service-quota-increase" in sent["Reason"]


def test_a_build_that_would_outlast_the_invocation_is_stopped_and_fails_the_resource(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
) -> None:
    (client, stubber), (_, url) = codebuild, endpoint
    clock = Clock(custom_resource.STOP_MARGIN_S + custom_resource.POLL_INTERVAL_S + 1)  # one more poll
    expect_start(stubber)
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    stubber.add_response("stop_build", {"build": {"id": NEW, "buildStatus": "STOPPED"}}, {"id": NEW})
    sent = run(cloudformation_request("Create", url), client, clock)
    assert (sent["Status"], sent["PhysicalResourceId"]) == ("FAILED", NEW)
    assert f"CodeBuild build {NEW} was still running" in sent["Reason"]
    assert "stopped" in sent["Reason"]


def test_a_delete_answers_success_with_the_same_physical_id(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
) -> None:
    (client, stubber), (_, url) = codebuild, endpoint
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    sent = run(cloudformation_request("Delete", url, NEW), client, Clock(900))
    assert (sent["Status"], sent["PhysicalResourceId"], sent["Data"]) == ("SUCCESS", NEW, {})


def test_a_refused_put_raises_without_naming_the_url(
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Raising makes the invocation fail (the answer never arrived); the message and log carry no URL.
    (client, stubber), (state, url) = codebuild, endpoint
    caplog.set_level(logging.DEBUG)
    state.status = 403
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    with pytest.raises(ResponseNotDelivered) as failure:
        run(cloudformation_request("Delete", url, NEW), client, Clock(900))
    assert str(failure.value) == "the response URL answered HTTP 403"
    assert CANARY not in caplog.text


def test_an_unreachable_url_raises_without_naming_it() -> None:
    with pytest.raises(ResponseNotDelivered) as failure:
        cfn_response.send(f"https://127.0.0.1:9/{CANARY}", b"{}")
    assert CANARY not in str(failure.value)


@pytest.mark.parametrize(
    "url",
    [
        f"https://127.0.0.1:{CANARY}/x",  # http.client.InvalidURL, whose message quotes the port
        f"https://127.0.0.1/{CANARY} x\nHost: elsewhere",  # InvalidURL: control characters
        f"https://[{CANARY}/",  # ValueError from urllib.parse
    ],
)
def test_a_malformed_url_raises_the_named_error_without_naming_it(url: str) -> None:
    with pytest.raises(ResponseNotDelivered) as failure:
        cfn_response.send(url, b"{}")
    assert CANARY not in str(failure.value)
    assert failure.value.__cause__ is None
    assert failure.value.__suppress_context__


@pytest.mark.parametrize("scheme", ["http", "ftp", "file", "HTTPS"])
def test_a_request_whose_url_is_not_https_starts_no_build_and_puts_nothing(
    scheme: str,
    codebuild: tuple[Any, Stubber],  # noqa: F811
    endpoint: tuple[Endpoint, str],
) -> None:
    # A forged invocation may name any URL: only https:// is ever answered, and nothing runs before the check
    # (the Stubber has no expected call, so any CodeBuild call would fail the test differently).
    (client, stubber), (state, url) = codebuild, endpoint
    forged = cloudformation_request("Create", scheme + url.removeprefix("https"))
    with pytest.raises(ResponseNotDelivered, match="not an https:// URL") as failure:
        run(forged, client, Clock(900))
    assert CANARY not in str(failure.value)
    assert state.puts == []
    stubber.assert_no_pending_responses()


def test_a_reason_too_long_for_4096_bytes_is_shortened_and_the_rest_kept() -> None:
    event = {"StackId": "s", "RequestId": "r", "LogicalResourceId": "l"}
    body = cfn_response.body(event, "FAILED", PROJECT, reason="x" * 10_000)
    assert len(body) <= cfn_response.MAX_BODY_BYTES
    assert json.loads(body)["Reason"].endswith("...")


def test_a_failed_answer_needs_a_reason_and_a_status_is_one_of_two() -> None:
    event = {"StackId": "s", "RequestId": "r", "LogicalResourceId": "l"}
    with pytest.raises(ValueError, match="needs a Reason"):
        cfn_response.body(event, "FAILED", PROJECT)
    with pytest.raises(ValueError, match="Status must be"):
        cfn_response.body(event, "DONE", PROJECT)
    with pytest.raises(ValueError, match="PhysicalResourceId"):
        cfn_response.body(event, "SUCCESS", "")

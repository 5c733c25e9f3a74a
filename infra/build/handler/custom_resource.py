"""The Custom::EnclaveImageBuild resource's one Lambda function (its ServiceToken; stdlib + boto3).

CloudFormation invokes it with the request; it decides which build the request stands on (starting one when
needed, enclave_build.handle_event), waits for that build within this invocation, validates every value the
build exported (enclave_build.build_data) and PUTs the answer to the request's presigned ResponseURL itself
(cfn_response). Nothing else ever holds the event: no state machine, no second function, no log line (only
the request type, logical id, request id and the outcome are logged), no environment variable, no StartBuild
override. So only this function, with the values it checked, can answer, and the key policy's pin
(AcceptedPcr0) is fed by nothing else.
A build still running when too little of the invocation is left is stopped, and the resource FAILS saying so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import boto3

from . import cfn_response, enclave_build

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# BatchGetBuilds every POLL_INTERVAL_S while the build runs; stop waiting (and stop the build) once less
# than STOP_MARGIN_S of the invocation is left: enough for StopBuild and the PUT (its own timeout 30 s).
POLL_INTERVAL_S = 10.0
STOP_MARGIN_S = 60.0
# The physical id of a Create that failed before any build started: no build id, so a Delete does nothing.
CREATE_FAILED = "CREATE_FAILED"

Event = dict[str, Any]


def handler(event: Event, context: Any) -> None:
    """The Lambda entry: `context` is Lambda's (get_remaining_time_in_millis)."""
    answer(event, context, boto3.client("codebuild"))


def answer(
    event: Event,
    context: Any,
    client: enclave_build.Client,
    *,
    sleep: Callable[[float], None] = time.sleep,
    send: Callable[[str, bytes], int] = cfn_response.send,
) -> bytes:
    """Run the request and PUT its answer; back: the body sent (SUCCESS with Data, or FAILED with Reason).
    A request whose ResponseURL is not https:// (never CloudFormation's) raises before any CodeBuild call."""
    cfn_response.check_url(str(event.get("ResponseURL", "")))
    logger.info(
        "%s of %s, request %s",
        event.get("RequestType"),
        event.get("LogicalResourceId"),
        event.get("RequestId"),
    )
    outcome = _Outcome(str(event.get("PhysicalResourceId") or CREATE_FAILED))
    try:
        data = _run(event, client, outcome, lambda: context.get_remaining_time_in_millis() / 1000, sleep)
        payload = cfn_response.body(event, cfn_response.SUCCESS, outcome.physical_id, data=data)
        logger.info("SUCCESS, physical id %s: %s", outcome.physical_id, data)
    except Exception as error:
        reason = (
            str(error) if isinstance(error, enclave_build.BuildError) else f"{type(error).__name__}: {error}"
        )
        payload = cfn_response.body(event, cfn_response.FAILED, outcome.physical_id, reason=reason)
        logger.info("FAILED, physical id %s: %s", outcome.physical_id, reason)
    status = send(str(event.get("ResponseURL", "")), payload)
    logger.info("answer delivered (HTTP %s)", status)
    return payload


class _Outcome:
    def __init__(self, physical_id: str) -> None:
        self.physical_id = physical_id


def _run(
    event: Event,
    client: enclave_build.Client,
    outcome: _Outcome,
    remaining_s: Callable[[], float],
    sleep: Callable[[float], None],
) -> dict[str, str]:
    decided = enclave_build.handle_event(event, client)
    outcome.physical_id = decided["PhysicalResourceId"]
    request = {**event, **decided}
    while True:
        complete = enclave_build.check_complete(request, client)
        if complete["IsComplete"]:
            data: dict[str, str] = complete.get("Data", {})
            return data
        if remaining_s() < STOP_MARGIN_S + POLL_INTERVAL_S:
            client.stop_build(id=outcome.physical_id)
            raise enclave_build.BuildError(
                f"CodeBuild build {outcome.physical_id} was still running with {remaining_s():.0f} s of the "
                "handler's Lambda time left: stopped. Builds take minutes; see the build's log in the "
                "CodeBuild console for where it spent the time, then deploy again."
            )
        sleep(POLL_INTERVAL_S)

"""The SignalResource stand-in, reached as a host reaches it: boto3 (the AWS CLI's botocore) with
AWS_ENDPOINT_URL_CLOUDFORMATION set, as the rehearsal sets it in the host's default environment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from rehearsal import cfn_signals

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/NitroEnclaveDemo/rehearsal"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Path]:
    cfn_signals.Handler.stack = cfn_signals.Stack(
        "NitroEnclaveDemo", STACK_ID, frozenset({"HostsGroup"}), tmp_path / "state.json"
    )
    cfn_signals.Handler.record = tmp_path / "signals.jsonl"
    server = ThreadingHTTPServer(("127.0.0.1", 0), cfn_signals.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL_CLOUDFORMATION", f"http://127.0.0.1:{server.server_address[1]}")
        yield tmp_path
    server.shutdown()


def signal(**overrides: str) -> Any:
    client = boto3.session.Session(
        aws_access_key_id="LOCALINSTANCEROLE001", aws_secret_access_key="x", region_name="us-east-1"
    ).client("cloudformation")
    arguments = {"StackName": "NitroEnclaveDemo", "LogicalResourceId": "HostsGroup",
                 "UniqueId": "i-0123456789abcdef0", "Status": "SUCCESS"} | overrides  # fmt: skip
    return client.signal_resource(**arguments)


def refusal(**overrides: str) -> str:
    with pytest.raises(ClientError) as refused:
        signal(**overrides)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    return str(refused.value.response["Error"]["Message"])


def test_a_signal_while_the_group_waits_is_recorded_with_its_signer(endpoint: Path) -> None:
    cfn_signals.set_stack_status(endpoint / "state.json", "CREATE_IN_PROGRESS")
    signal()
    signal(UniqueId="i-0fedcba9876543210", Status="FAILURE", StackName=STACK_ID)
    assert cfn_signals.read_signals(endpoint / "signals.jsonl") == [
        cfn_signals.ResourceSignal("HostsGroup", "i-0123456789abcdef0", "SUCCESS", "LOCALINSTANCEROLE001"),
        cfn_signals.ResourceSignal("HostsGroup", "i-0fedcba9876543210", "FAILURE", "LOCALINSTANCEROLE001"),
    ]


def test_unknown_stacks_and_resources_are_refused_as_cloudformation_refuses_them(endpoint: Path) -> None:
    cfn_signals.set_stack_status(endpoint / "state.json", "UPDATE_IN_PROGRESS")
    assert refusal(StackName="OtherStack") == "Stack with id OtherStack does not exist"
    assert (
        refusal(LogicalResourceId="Instance") == "Resource Instance does not exist for stack NitroEnclaveDemo"
    )
    assert not (endpoint / "signals.jsonl").exists()


def test_no_signal_is_taken_once_the_stack_has_finished(endpoint: Path) -> None:
    cfn_signals.set_stack_status(endpoint / "state.json", "CREATE_COMPLETE")
    assert refusal() == f"Stack {STACK_ID} is in CREATE_COMPLETE state and cannot be signaled"


def test_a_unique_id_longer_than_64_characters_is_refused(endpoint: Path) -> None:
    cfn_signals.set_stack_status(endpoint / "state.json", "CREATE_IN_PROGRESS")
    with pytest.raises(ClientError):  # botocore validates the length client-side or the stand-in refuses
        signal(UniqueId="i-" + "0" * 63)
    assert not (endpoint / "signals.jsonl").exists()


def test_the_stand_in_itself_refuses_what_the_api_refuses(tmp_path: Path) -> None:
    stack = cfn_signals.Stack(
        "NitroEnclaveDemo", STACK_ID, frozenset({"HostsGroup"}), tmp_path / "state.json"
    )
    cfn_signals.set_stack_status(stack.state, "CREATE_IN_PROGRESS")
    signed = "AWS4-HMAC-SHA256 Credential=LOCALINSTANCEROLE001/20261201/us-east-1/cloudformation/aws4_request"
    form = {
        "Action": "SignalResource",
        "Version": "2010-05-15",
        "StackName": "NitroEnclaveDemo",
        "LogicalResourceId": "HostsGroup",
        "UniqueId": "i-0123456789abcdef0",
        "Status": "SUCCESS",
    }
    assert cfn_signals.signal_from(form, signed, stack).unique_id == "i-0123456789abcdef0"
    refusals = [
        ({**form, "UniqueId": "i" * 65}, signed, "length <= 64"),
        ({**form, "Status": "DONE"}, signed, "failed to satisfy constraint"),
        ({k: v for k, v in form.items() if k != "UniqueId"}, signed, "UniqueId is required"),
        (form, "", "Authentication Token"),
        (form, signed.replace("cloudformation", "s3"), "Authentication Token"),
    ]
    for bad_form, authorization, message in refusals:
        with pytest.raises(cfn_signals.Refused, match=message):
            cfn_signals.signal_from(bad_form, authorization, stack)

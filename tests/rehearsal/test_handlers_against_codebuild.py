"""The stack's own custom-resource function (infra/build/handler/) through the custom resource replay against
the CodeBuild stand-in's API: the shapes the stand-in answers are the ones the handlers read. The build
container is not started here (the rehearsal runs it): each build's outcome is set where the agent's
result would come in, so a success, a failed BUILD phase and an update's PREVIOUS_BUILD_ID are checked
without systemd-nspawn."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.build.handler import custom_resource
from rehearsal import codebuild, codebuild_exec
from rehearsal.provider import Context, CustomResource, CustomResourceFailed, Function, ResponseEndpoint

PROJECT = "NitroEnclaveDemo-Project-REHEARSAL"
H1, H2 = "1" * 64, "2" * 64  # code asset hashes
RESOURCE = {"Type": "Custom::EnclaveImageBuild"}
Outcome = Callable[[codebuild_exec.BuildExecution], None]


def succeeded(pcr0: str) -> Outcome:
    def finish(build: codebuild_exec.BuildExecution) -> None:
        exported = {"PCR0": pcr0, "PCR1": "1" * 96, "PCR2": "2" * 96, "EIF_KEY": f"eif/{'e' * 64}.eif",
                    "EIF_VERSION": "v-1", "NITRO_CLI_VERSION": "1.5.0", **build.env_override}  # fmt: skip
        build.result = {
            "phases": [{"phaseType": "BUILD", "phaseStatus": "SUCCEEDED"}],
            "buildStatus": "SUCCEEDED",
            "exportedEnvironmentVariables": [{"name": k, "value": v} for k, v in exported.items()],
        }
        build.status = "SUCCEEDED"

    return finish


def failed_in_build(build: codebuild_exec.BuildExecution) -> None:
    context = {
        "statusCode": "COMMAND_EXECUTION_ERROR",
        "message": "Error while executing command: x. Reason: exit status 1",
    }
    build.result = {"phases": [{"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [context]}]}
    build.status = "FAILED"


@pytest.fixture
def endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Outcome]]:
    monkeypatch.setattr(custom_resource, "POLL_INTERVAL_S", 0.05)
    monkeypatch.setattr(custom_resource, "STOP_MARGIN_S", 0.0)
    project = {"name": PROJECT, "arn": f"arn:aws:codebuild:us-east-1:123456789012:project/{PROJECT}",
               "source": {"type": "S3", "location": "b/k.zip"}, "environmentVariables": []}  # fmt: skip
    config = {"region": "us-east-1", "account": "123456789012", "projects": {PROJECT: project},
              "lower_dirs": [], "netns": str(tmp_path), "work_dir": str(tmp_path)}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    outcomes: list[Outcome] = []

    def run_without_container(build: codebuild_exec.BuildExecution) -> None:
        outcomes.pop(0)(build)
        build.ended = time.time()

    monkeypatch.setattr(codebuild_exec.BuildExecution, "_run", run_without_container)
    codebuild.Handler.service = codebuild.Service(tmp_path / "config.json")
    server = ThreadingHTTPServer(("127.0.0.1", 0), codebuild.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, value in {"AWS_ENDPOINT_URL_CODEBUILD": f"http://127.0.0.1:{server.server_address[1]}",
                        "AWS_ACCESS_KEY_ID": "LOCALPROVIDERROLE001", "AWS_SECRET_ACCESS_KEY": "x",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with RESPONSES.serving():
        yield outcomes
    server.shutdown()


RESPONSES = ResponseEndpoint()


def provider() -> CustomResource:
    return CustomResource(Function("Handler", custom_resource.handler, {}, 10.0), RESPONSES, "stack-id")


def properties(source_hash: str) -> dict[str, str]:
    return {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:x", "SourceHash": source_hash,
            "SourceLocation": f"b/{source_hash}.zip", "ProjectName": PROJECT, "ExpectedPcr0": "",
            "RetirePrevious": "false", "NitroCliVersion": ""}  # fmt: skip


def test_create_then_a_code_update_carries_the_previous_pcr0(endpoint: list[Outcome]) -> None:
    endpoint += [succeeded("a" * 96), succeeded("b" * 96)]
    created = provider().request("Create", "Build", RESOURCE, ResourceProperties=properties(H1))
    assert created.physical_id.startswith(f"{PROJECT}:")
    assert created.data["Pcr0"] == "a" * 96
    assert created.data["AcceptedPcr0"] == "a" * 96
    updated = provider().request(
        "Update", "Build", RESOURCE, ResourceProperties=properties(H2),
        OldResourceProperties=properties(H1), PhysicalResourceId=created.physical_id,
    )  # fmt: skip
    assert updated.physical_id != created.physical_id
    assert updated.data["PreviousPcr0"] == "a" * 96
    assert updated.data["AcceptedPcr0"] == f"{'b' * 96},{'a' * 96}"


def test_a_failed_build_fails_with_its_phase_codebuilds_message_and_the_log_link(
    endpoint: list[Outcome],
) -> None:
    endpoint.append(failed_in_build)
    with pytest.raises(CustomResourceFailed) as failed:
        provider().request("Create", "Build", RESOURCE, ResourceProperties=properties(H1))
    reason = str(failed.value)
    assert "in phase BUILD (FAILED): COMMAND_EXECUTION_ERROR" in reason
    assert "exit status 1" in reason
    assert f"#logEvent:group=/aws/codebuild/{PROJECT};stream=" in reason


def test_the_same_create_delivered_twice_starts_one_build_and_both_answers_name_it(
    endpoint: list[Outcome],
) -> None:
    # CloudFormation may deliver a request more than once: StartBuild's idempotencyToken (the RequestId)
    # gives the second delivery the first one's build, which the stand-in keeps as CodeBuild does.
    endpoint.append(succeeded("a" * 96))  # one outcome only: a second build would find none and fail
    event = {"RequestType": "Create", "RequestId": "request-1", "StackId": "stack-id",
             "LogicalResourceId": "Build", "ResourceType": RESOURCE["Type"],
             "ResourceProperties": properties(H1)}  # fmt: skip
    answers = []
    for _ in range(2):
        with RESPONSES.trusted():
            custom_resource.handler({**event, "ResponseURL": RESPONSES.url("request-1")}, Context(10.0))
        answers.append(json.loads(RESPONSES.taken("request-1")[-1].body))
    assert [a["Status"] for a in answers] == ["SUCCESS", "SUCCESS"]
    assert answers[0]["PhysicalResourceId"] == answers[1]["PhysicalResourceId"]
    assert answers[0]["Data"] == answers[1]["Data"]

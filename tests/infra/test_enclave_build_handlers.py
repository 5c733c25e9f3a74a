"""The EnclaveImageBuild custom resource's handlers against botocore's Stubber: every CodeBuild call is
checked against botocore's own model of the API (parameter names, types, enums) and every answer is shaped
like CodeBuild's. The event passed to is_complete is the CloudFormation request merged with on_event's
answer, as the Provider framework builds it (aws-cdk-lib custom-resources/lib/provider-framework/runtime/
framework.js)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from infra.build.handler import enclave_build
from infra.build.handler.enclave_build import BuildError, check_complete, handle_event
from infra.constructs.enclave_image import ATTRIBUTES

PROJECT = "EnclaveImageProject-abc"
NEW = f"{PROJECT}:11111111-2222-3333-4444-555555555555"
OLD = f"{PROJECT}:99999999-8888-7777-6666-555555555555"
PCR0, PCR1, PCR2, OLD_PCR0 = ("a" * 96, "b" * 96, "c" * 96, "d" * 96)
EIF_KEY = "eif/" + "e" * 64 + ".eif"
EIF_VERSION = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
DEEP_LINK = "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=g;stream=s"
LOCATION = "cdk-assets-bucket/0123abcd.zip"
REQUEST_ID = "unique-id-for-this-create-request"


@pytest.fixture
def codebuild() -> Iterator[tuple[Any, Stubber]]:
    client = botocore.session.get_session().create_client(
        "codebuild", region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def props(**overrides: str) -> dict[str, str]:
    base = {
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:framework-onEvent",
        "SourceHash": "hash-1",
        "SourceLocation": LOCATION,
        "ProjectName": PROJECT,
        "ExpectedPcr0": "",
        "RetirePrevious": "false",
    }
    return {**base, **overrides}


def request(kind: str, physical_id: str | None = None, old: dict[str, str] | None = None, **p: str) -> Any:
    event: dict[str, Any] = {"RequestType": kind, "RequestId": REQUEST_ID, "ResourceProperties": props(**p)}
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old is not None:
        event["OldResourceProperties"] = old
    return event


def exported(previous: str = "", **values: str) -> dict[str, str]:
    base = {
        "PCR0": PCR0,
        "PCR1": PCR1,
        "PCR2": PCR2,
        "EIF_KEY": EIF_KEY,
        "EIF_VERSION": EIF_VERSION,
        "PREVIOUS_BUILD_ID": previous,
    }
    return {**base, **values}


def build(build_id: str, status: str, variables: dict[str, str] | None = None, **extra: Any) -> Any:
    record: dict[str, Any] = {"id": build_id, "buildStatus": status, **extra}
    if variables is not None:
        record["exportedEnvironmentVariables"] = [{"name": k, "value": v} for k, v in variables.items()]
    return record


def expect_get(stubber: Stubber, build_id: str, *records: Any) -> None:
    answer: dict[str, Any] = {"builds": list(records)}
    if not records:
        answer["buildsNotFound"] = [build_id]
    stubber.add_response("batch_get_builds", answer, {"ids": [build_id]})


def expect_start(stubber: Stubber, *, previous: str, source_hash: str = "hash-1") -> None:
    stubber.add_response(
        "start_build",
        {"build": {"id": NEW, "buildStatus": "IN_PROGRESS"}},
        {
            "projectName": PROJECT,
            "sourceTypeOverride": "S3",
            "sourceLocationOverride": LOCATION,
            "environmentVariablesOverride": [
                {"name": "PREVIOUS_BUILD_ID", "value": previous, "type": "PLAINTEXT"},
                {"name": "SOURCE_HASH", "value": source_hash, "type": "PLAINTEXT"},
            ],
            "idempotencyToken": REQUEST_ID,
        },
    )


def as_framework_would(event: Any, answer: Any) -> Any:
    """is_complete's input: the request with on_event's answer merged in (createResponseEvent)."""
    return {**event, **answer}


def test_create_starts_one_build_whose_id_is_the_physical_id(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_start(stubber, previous="")
    assert handle_event(request("Create"), client) == {"PhysicalResourceId": NEW}


def test_a_running_build_is_not_complete_and_carries_no_data(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    event = as_framework_would(request("Create"), {"PhysicalResourceId": NEW})
    # The framework refuses Data with IsComplete false (framework.js isComplete).
    assert check_complete(event, client) == {"IsComplete": False}


def test_a_first_build_succeeds_with_its_exported_values(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    event = as_framework_would(request("Create"), {"PhysicalResourceId": NEW})
    assert check_complete(event, client) == {
        "IsComplete": True,
        "Data": {
            "Pcr0": PCR0,
            "Pcr1": PCR1,
            "Pcr2": PCR2,
            "EifKey": EIF_KEY,
            "EifVersion": EIF_VERSION,
            "PreviousPcr0": "",
            "AcceptedPcr0": PCR0,
        },
    }


def test_the_data_keys_are_the_constructs_attributes(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    answer = check_complete(as_framework_would(request("Create"), {"PhysicalResourceId": NEW}), client)
    assert tuple(answer["Data"]) == ATTRIBUTES


def test_an_update_with_new_code_builds_with_the_old_build_as_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_start(stubber, previous=OLD, source_hash="hash-2")
    event = request("Update", OLD, old=props(), SourceHash="hash-2")
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": NEW}

    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    data = check_complete(as_framework_would(event, answer), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == (OLD_PCR0, f"{PCR0},{OLD_PCR0}")


def test_retire_previous_drops_the_previous_measurement(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))  # no lookup of OLD
    event = request("Update", NEW, old=props(SourceHash="hash-0"), RetirePrevious="true")
    data = check_complete(event, client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", PCR0)


def test_an_update_without_code_change_builds_nothing_and_recomputes(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    # RetirePrevious flips from false to true: same source, so no StartBuild (the Stubber has none queued).
    event = request("Update", NEW, old=props(), RetirePrevious="true")
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": NEW}
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    assert check_complete(as_framework_would(event, answer), client)["Data"]["AcceptedPcr0"] == PCR0


def test_an_update_without_code_change_keeps_the_previous_it_had(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    event = request("Update", NEW, old=props(RetirePrevious="true"), RetirePrevious="false")
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    answer = handle_event(event, client)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    data = check_complete(as_framework_would(event, answer), client)["Data"]
    assert data["AcceptedPcr0"] == f"{PCR0},{OLD_PCR0}"


def test_a_previous_build_with_the_same_measurement_is_listed_once(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported()))  # a reproducible rebuild: same PCR0
    data = check_complete(request("Update", NEW, old=props(SourceHash="hash-0")), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", PCR0)


@pytest.mark.parametrize("previous", [[], [build(OLD, "FAILED", exported(PCR0=OLD_PCR0))]])
def test_a_previous_build_gone_or_failed_gives_no_previous(
    codebuild: tuple[Any, Stubber], previous: list[Any]
) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, *previous)
    data = check_complete(request("Update", NEW, old=props(SourceHash="hash-0")), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", PCR0)


def test_an_update_over_a_physical_id_that_is_no_build_has_no_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_start(stubber, previous="", source_hash="hash-2")
    event = request("Update", "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED", old=props())
    event["ResourceProperties"]["SourceHash"] = "hash-2"
    assert handle_event(event, client) == {"PhysicalResourceId": NEW}


def test_an_update_without_code_change_rebuilds_a_build_codebuild_forgot(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD)  # buildsNotFound
    expect_start(stubber, previous="")
    assert handle_event(request("Update", OLD, old=props(), RetirePrevious="true"), client) == {
        "PhysicalResourceId": NEW
    }


def test_a_replaced_project_builds_anew_without_a_previous(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_start(stubber, previous="")
    event = request("Update", "OldProject-xyz:" + OLD.split(":")[1], old=props(ProjectName="OldProject-xyz"))
    assert handle_event(event, client) == {"PhysicalResourceId": NEW}


def test_a_failed_build_fails_the_deploy_with_its_reason_and_log(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    phases = [
        {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
        {
            "phaseType": "BUILD",
            "phaseStatus": "FAILED",
            "contexts": [
                {
                    "statusCode": "COMMAND_EXECUTION_ERROR",
                    "message": 'Error while executing command: bash infra/build/build-eif.sh "$OUT". '
                    "Reason: exit status 1",
                }
            ],
        },
    ]
    expect_get(stubber, NEW, build(NEW, "FAILED", phases=phases, logs={"deepLink": DEEP_LINK}))
    with pytest.raises(BuildError) as failure:
        check_complete(request("Create", NEW), client)
    message = str(failure.value)
    assert f"CodeBuild build {NEW} FAILED in phase BUILD (FAILED)" in message
    assert "COMMAND_EXECUTION_ERROR: Error while executing command: bash infra/build/build-eif.sh" in message
    assert message.endswith(f"Log: {DEEP_LINK}")


@pytest.mark.parametrize(
    ("status", "phase", "context"),
    [
        ("TIMED_OUT", "BUILD", {"statusCode": "BUILD_TIMED_OUT", "message": "Build has timed out. "}),
        ("STOPPED", "BUILD", {"statusCode": "BUILD_STOPPED", "message": "Build was stopped"}),
        ("FAULT", "PROVISIONING", {"statusCode": "ACCESS_DENIED", "message": "Service role cannot assume"}),
    ],
)
def test_a_build_that_times_out_stops_or_faults_fails_with_its_reason(
    codebuild: tuple[Any, Stubber], status: str, phase: str, context: dict[str, str]
) -> None:
    client, stubber = codebuild
    phases = [{"phaseType": "SUBMITTED", "phaseStatus": "SUCCEEDED"}]
    phases.append({"phaseType": phase, "phaseStatus": status, "contexts": [context]})  # type: ignore[dict-item]
    expect_get(stubber, NEW, build(NEW, status, phases=phases, logs={"deepLink": DEEP_LINK}))
    with pytest.raises(BuildError, match=f"{status} in phase {phase} \\({status}\\)") as failure:
        check_complete(request("Create", NEW), client)
    assert context["message"].strip() in str(failure.value)
    assert DEEP_LINK in str(failure.value)


def test_a_build_codebuild_does_not_know_fails_by_name(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW)
    with pytest.raises(BuildError, match=f"CodeBuild has no build '{NEW}'"):
        check_complete(request("Create", NEW), client)


def test_a_build_deleted_while_running_is_stopped(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    stubber.add_response("stop_build", {"build": {"id": NEW, "buildStatus": "STOPPED"}}, {"id": NEW})
    answer = handle_event(request("Delete", NEW), client)
    assert answer == {"PhysicalResourceId": NEW}  # the framework refuses a changed id on Delete
    assert check_complete(as_framework_would(request("Delete", NEW), answer), client) == {"IsComplete": True}


def test_deleting_a_finished_build_calls_nothing_but_its_status(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported()))  # EIF objects stay: no S3 call at all
    assert handle_event(request("Delete", OLD), client) == {"PhysicalResourceId": OLD}


def test_deleting_what_is_no_build_of_the_project_calls_nothing(codebuild: tuple[Any, Stubber]) -> None:
    client, _ = codebuild
    for physical_id in (
        "AWSCDK::CustomResourceProviderFramework::CREATE_FAILED",
        "other:" + NEW.split(":")[1],
    ):
        assert handle_event(request("Delete", physical_id), client) == {"PhysicalResourceId": physical_id}


def test_a_pcr0_other_than_enclave_pcr0_fails_the_deploy(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expected = "f" * 96
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    with pytest.raises(BuildError) as failure:
        check_complete(request("Create", NEW, ExpectedPcr0=expected), client)
    assert str(failure.value) == f"the build's PCR0 {PCR0} differs from enclave_pcr0 {expected}"


def test_enclave_pcr0_is_compared_without_regard_to_case(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    answer = check_complete(request("Create", NEW, ExpectedPcr0=PCR0.upper()), client)
    assert answer["Data"]["Pcr0"] == PCR0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PCR0", "A" * 96),  # upper case: the buildspec lower-cases, anything else is not its output
        ("PCR1", "a" * 95),
        ("PCR2", ""),
        ("PCR0", "0x" + "a" * 94),
        ("EIF_KEY", "eif/../secrets.eif"),
        ("EIF_KEY", "e" * 64 + ".eif"),
        ("EIF_VERSION", ""),
        ("EIF_VERSION", "v1 with spaces"),
    ],
)
def test_malformed_exported_variables_are_refused_by_name(
    codebuild: tuple[Any, Stubber], name: str, value: str
) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(**{name: value})))
    with pytest.raises(BuildError, match=f"the build's exported {name} "):
        check_complete(request("Create", NEW), client)


@pytest.mark.parametrize("name", ["PCR0", "EIF_KEY", "EIF_VERSION"])
def test_a_missing_exported_variable_is_refused_by_name(codebuild: tuple[Any, Stubber], name: str) -> None:
    client, stubber = codebuild
    variables = exported()
    del variables[name]
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", variables))
    with pytest.raises(BuildError, match=f"the build exported no {name}$"):
        check_complete(request("Create", NEW), client)


def test_an_unversioned_eif_is_refused(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(EIF_VERSION="null")))
    with pytest.raises(BuildError, match="EIF_VERSION is 'null'"):
        check_complete(request("Create", NEW), client)


def test_a_previous_build_id_of_another_project_is_refused(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    foreign = "SomeOtherProject:" + OLD.split(":")[1]
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=foreign)))
    with pytest.raises(BuildError, match="PREVIOUS_BUILD_ID 'SomeOtherProject:"):
        check_complete(request("Create", NEW), client)


def test_a_long_malformed_value_is_shortened_in_the_message(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(PCR0="z" * 5000)))
    with pytest.raises(BuildError) as failure:
        check_complete(request("Create", NEW), client)
    assert len(str(failure.value)) < enclave_build.MAX_SHOWN_CHARS + 200

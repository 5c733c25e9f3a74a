"""The EnclaveImageBuild custom resource's decisions (handle_event: which build; check_complete: its
attributes) against botocore's Stubber: every CodeBuild call is checked against botocore's own model of the
API (parameter names, types, enums) and every answer is shaped like CodeBuild's. check_complete gets the
request merged with handle_event's answer, as custom_resource._run passes it within one invocation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from botocore.stub import Stubber

from infra.build.handler import messages
from infra.build.handler.enclave_build import (
    NO_PREVIOUS,
    RETURNING_FROM,
    BuildError,
    check_complete,
    handle_event,
)
from infra.constructs.enclave_image import ATTRIBUTES

PROJECT = "EnclaveImageProject-abc"
NEW = f"{PROJECT}:11111111-2222-3333-4444-555555555555"
OLD = f"{PROJECT}:99999999-8888-7777-6666-555555555555"
FAILED = f"{PROJECT}:77777777-8888-7777-6666-555555555555"
PCR0, PCR1, PCR2, OLD_PCR0 = ("a" * 96, "b" * 96, "c" * 96, "d" * 96)
EIF_KEY = "eif/" + "e" * 64 + ".eif"
EIF_VERSION = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo"
BUNDLE_SHA256 = "b" * 64
BUNDLE_KEY = f"bundle/{BUNDLE_SHA256}.tar.gz"
BUNDLE_VERSION = "Zx.bundle-version_1"
DEEP_LINK = "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=g;stream=s"
LOCATION = "cdk-assets-bucket/0123abcd.zip"
REQUEST_ID = "unique-id-for-this-create-request"
# Code asset hashes (CDK's: SHA-256, lower-case hex), one per version of the code.
H0, H1, H2, H3 = ("0" * 64, "1" * 64, "2" * 64, "3" * 64)


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
        "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:EnclaveImageHandler",
        "SourceHash": H1,
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


def exported(previous: str = NO_PREVIOUS, source: str = H1, **values: str) -> dict[str, str]:
    base = {
        "PCR0": PCR0,
        "PCR1": PCR1,
        "PCR2": PCR2,
        "EIF_KEY": EIF_KEY,
        "EIF_VERSION": EIF_VERSION,
        "PREVIOUS_BUILD_ID": previous,
        "SOURCE_HASH": source,
        "NITRO_CLI_VERSION": "1.4.2",
        "BUNDLE_KEY": BUNDLE_KEY,
        "BUNDLE_VERSION": BUNDLE_VERSION,
        "BUNDLE_SHA256": BUNDLE_SHA256,
    }
    return {**base, **values}


def started_with(previous: str, source: str) -> dict[str, Any]:
    """BatchGetBuilds' environment of a build (a ProjectEnvironment in botocore's model): the project's
    variables with StartBuild's overrides."""
    variables = {"EIF_BUCKET": "b", "PREVIOUS_BUILD_ID": previous, "SOURCE_HASH": source}
    return {
        "type": "LINUX_CONTAINER",
        "image": "aws/codebuild/amazonlinux-x86_64-standard:5.0",
        "computeType": "BUILD_GENERAL1_MEDIUM",
        "environmentVariables": [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in variables.items()],
    }


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


def expect_start(stubber: Stubber, *, previous: str = NO_PREVIOUS, source_hash: str = H1) -> None:
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


def in_one_invocation(event: Any, answer: Any) -> Any:
    """check_complete's input: the request with handle_event's answer merged in (custom_resource._run)."""
    return {**event, **answer}


def attributes(client: Any, event: Any, answer: Any) -> dict[str, str]:
    """What CloudFormation gets once the build is done: check_complete's Data alone."""
    complete = check_complete(in_one_invocation(event, answer), client)
    assert complete["IsComplete"] is True
    assert "Data" not in answer
    data: dict[str, str] = complete["Data"]
    return data


def test_create_starts_one_build_whose_id_is_the_physical_id(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_start(stubber)  # PREVIOUS_BUILD_ID "none", never "" (CodeBuild has refused empty values)
    assert handle_event(request("Create"), client) == {"PhysicalResourceId": NEW}


def test_a_running_build_is_not_complete_and_carries_no_data(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS"))
    event = in_one_invocation(request("Create"), {"PhysicalResourceId": NEW})
    assert check_complete(event, client) == {"IsComplete": False}


def test_a_first_build_succeeds_with_its_exported_values(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    event = in_one_invocation(request("Create"), {"PhysicalResourceId": NEW})
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
            "NitroCliVersion": "1.4.2",
            "BundleKey": BUNDLE_KEY,
            "BundleVersion": BUNDLE_VERSION,
            "BundleSha256": BUNDLE_SHA256,
        },
    }


def test_the_data_keys_are_the_constructs_attributes(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported()))
    answer = check_complete(in_one_invocation(request("Create"), {"PhysicalResourceId": NEW}), client)
    assert tuple(answer["Data"]) == ATTRIBUTES


def test_an_update_with_new_code_builds_with_the_old_build_as_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(PCR0=OLD_PCR0)))  # of hash-1, no previous
    expect_start(stubber, previous=OLD, source_hash=H2)
    event = request("Update", OLD, old=props(), SourceHash=H2)
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": NEW}

    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    data = check_complete(in_one_invocation(event, answer), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == (OLD_PCR0, f"{PCR0},{OLD_PCR0}")


# A revert: a deploy whose code is that of the build the current one replaced (A -> B -> A's code again).
# That is an Update (SourceHash back to hash-1, OldResourceProperties with B's hash-2) and the handler
# returns to A's build without building. CloudFormation's rollback of a failed update is NOT such an Update:
# for a custom resource whose update replaced it (a new physical id), it restores the old resource and sends
# Delete for the new physical id in the cleanup phase (see the rollback tests further down). The returns from
# a failed build's id below are the shapes the handler also accepts, should an Update ever name one.
# OLDER is what OLD itself replaced.
OLDER, OLDER_PCR0 = f"{PROJECT}:55555555-8888-7777-6666-555555555555", "f" * 96


def revert(physical_id: str, **p: str) -> Any:
    return request("Update", physical_id, old=props(SourceHash=H2), **p)


def expect_old(stubber: Stubber) -> None:
    """OLD as check_complete reads it: its own values, hash-1, having replaced OLDER."""
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0, EIF_VERSION="old-v")))


def expect_older(stubber: Stubber) -> None:
    expect_get(stubber, OLDER, build(OLDER, "SUCCEEDED", exported(PCR0=OLDER_PCR0, source=H0)))


def test_a_revert_of_a_successful_build_accepts_both_during_the_return(
    codebuild: tuple[Any, Stubber],
) -> None:
    # B (NEW) is deployed and serving; a deploy of A's code again: no build, and B's hosts keep decrypting
    # while the group replaces them with A's, after the key.
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    event = revert(NEW)
    answer = handle_event(event, client)  # no StartBuild queued: a build would fail the Stubber
    assert answer == {"PhysicalResourceId": OLD, RETURNING_FROM: NEW}  # no Data: check_complete's alone
    expect_old(stubber)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))  # PCR0 from CodeBuild
    data = attributes(client, event, answer)
    assert (data["Pcr0"], data["EifVersion"]) == (OLD_PCR0, "old-v")
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == (PCR0, f"{OLD_PCR0},{PCR0}")


def test_a_forward_revert_accepts_both_during_the_return(codebuild: tuple[Any, Stubber]) -> None:
    # A (OLD, hash-1) -> B (NEW, hash-2) -> A's code again, each a successful deploy: no build for the
    # third, and B's hosts keep decrypting while the group rolls back to A.
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    expect_older(stubber)  # of hash-0: not returned to
    expect_start(stubber, previous=OLD, source_hash=H2)
    forward = request("Update", OLD, old=props(), SourceHash=H2)
    forward_answer = handle_event(forward, client)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_old(stubber)
    assert attributes(client, forward, forward_answer)["AcceptedPcr0"] == f"{PCR0},{OLD_PCR0}"

    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    revert = request("Update", NEW, old=props(SourceHash=H2), SourceHash=H1)
    answer = handle_event(revert, client)
    assert answer == {"PhysicalResourceId": OLD, RETURNING_FROM: NEW}
    expect_old(stubber)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    data = attributes(client, revert, answer)
    assert (data["Pcr0"], data["AcceptedPcr0"]) == (OLD_PCR0, f"{OLD_PCR0},{PCR0}")


@pytest.mark.parametrize("exports", [True, False])
def test_a_revert_from_a_failed_build_accepts_the_old_and_its_previous(
    codebuild: tuple[Any, Stubber], exports: bool
) -> None:
    # An Update that names a failed build's id (the handler's FAILED answer carries it; CloudFormation's
    # rollback sends none, but the handler does not rely on that). Whether a failed build exports its
    # variables is not documented: its environment (StartBuild's overrides) serves too. No host ever ran
    # the failed build: the key keeps what it accepted before.
    client, stubber = codebuild
    variables = exported(OLD, source=H2) if exports else None
    failed = build(FAILED, "FAILED", variables, environment=started_with(OLD, H2))
    expect_get(stubber, FAILED, failed)
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    event = revert(FAILED)
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": OLD, RETURNING_FROM: FAILED}
    expect_old(stubber)
    expect_get(stubber, FAILED, failed)  # not SUCCEEDED: no PCR0 from it
    expect_older(stubber)
    data = attributes(client, event, answer)
    assert (data["EifVersion"], data["AcceptedPcr0"]) == ("old-v", f"{OLD_PCR0},{OLDER_PCR0}")


def test_a_build_left_that_codebuild_forgot_gives_the_old_builds_own_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_old(stubber)
    expect_get(stubber, NEW)  # buildsNotFound
    expect_older(stubber)
    data = attributes(client, revert(OLD), {"PhysicalResourceId": OLD, RETURNING_FROM: NEW})
    assert data["AcceptedPcr0"] == f"{OLD_PCR0},{OLDER_PCR0}"


def test_retire_previous_drops_the_build_left_on_a_return(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    event = revert(NEW, RetirePrevious="true")
    answer = handle_event(event, client)
    expect_old(stubber)  # and nothing else: neither NEW nor OLDER is looked up
    data = attributes(client, event, answer)
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", OLD_PCR0)


def test_a_build_left_with_the_same_measurement_is_listed_once(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_old(stubber)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2, PCR0=OLD_PCR0)))
    data = attributes(client, revert(OLD), {"PhysicalResourceId": OLD, RETURNING_FROM: NEW})
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", OLD_PCR0)


def test_a_build_left_of_another_project_is_refused(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_old(stubber)
    answer = {"PhysicalResourceId": OLD, RETURNING_FROM: "SomeOtherProject:" + NEW.split(":")[1]}
    with pytest.raises(BuildError, match="ReturningFrom 'SomeOtherProject:"):
        check_complete(in_one_invocation(revert(OLD), answer), client)


def test_a_later_update_that_keeps_the_returned_build_recomputes_from_it_alone(
    codebuild: tuple[Any, Stubber],
) -> None:
    # After the return the roll is over: an Update with OLD's source (here enclave_pcr0 set) names no
    # build left, so the previous is OLD's own again and NEW is no longer accepted.
    client, stubber = codebuild
    event = request("Update", OLD, old=props(), ExpectedPcr0=OLD_PCR0)
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": OLD}
    expect_old(stubber)
    expect_older(stubber)
    assert attributes(client, event, answer)["AcceptedPcr0"] == f"{OLD_PCR0},{OLDER_PCR0}"


def test_new_code_after_a_return_builds_with_the_returned_build_as_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    expect_older(stubber)
    expect_start(stubber, previous=OLD, source_hash=H3)
    event = request("Update", OLD, old=props(), SourceHash=H3)
    answer = handle_event(event, client)
    assert answer == {"PhysicalResourceId": NEW}
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H3)))
    expect_old(stubber)
    assert attributes(client, event, answer)["AcceptedPcr0"] == f"{PCR0},{OLD_PCR0}"


def test_an_update_that_names_the_old_build_with_its_source_keeps_it(codebuild: tuple[Any, Stubber]) -> None:
    # An Update that names the current build with its own source (a settings-only deploy): kept, no build.
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    assert handle_event(revert(OLD), client) == {"PhysicalResourceId": OLD}


def test_a_new_code_change_after_a_return_shape_still_builds(codebuild: tuple[Any, Stubber]) -> None:
    # NEW (hash-2) replaced OLD (hash-1); hash-3 is neither: build, with NEW as previous.
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(OLDER, PCR0=OLD_PCR0)))
    expect_start(stubber, previous=NEW, source_hash=H3)
    event = request("Update", NEW, old=props(SourceHash=H2), SourceHash=H3)
    assert handle_event(event, client) == {"PhysicalResourceId": NEW}


@pytest.mark.parametrize("status", ["FAILED", "STOPPED", "IN_PROGRESS"])
def test_a_previous_build_of_the_source_that_did_not_succeed_is_not_returned_to(
    codebuild: tuple[Any, Stubber], status: str
) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(OLD, source=H2)))
    expect_get(stubber, OLD, build(OLD, status, exported(OLDER, PCR0=OLD_PCR0)))
    expect_start(stubber, previous=NEW)
    assert handle_event(revert(NEW), client) == {"PhysicalResourceId": NEW}


def test_a_first_build_rolled_forward_from_has_no_build_to_return_to(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(NO_PREVIOUS, source=H2)))
    expect_start(stubber, previous=NEW)
    assert handle_event(revert(NEW), client) == {"PhysicalResourceId": NEW}


def test_retire_previous_drops_the_previous_measurement(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))  # no lookup of OLD
    event = request("Update", NEW, old=props(SourceHash=H0), RetirePrevious="true")
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
    assert check_complete(in_one_invocation(event, answer), client)["Data"]["AcceptedPcr0"] == PCR0


def test_an_update_without_code_change_keeps_the_previous_it_had(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    event = request("Update", NEW, old=props(RetirePrevious="true"), RetirePrevious="false")
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    answer = handle_event(event, client)
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    data = check_complete(in_one_invocation(event, answer), client)["Data"]
    assert data["AcceptedPcr0"] == f"{PCR0},{OLD_PCR0}"


def test_a_previous_build_with_the_same_measurement_is_listed_once(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported()))  # a reproducible rebuild: same PCR0
    data = check_complete(request("Update", NEW, old=props(SourceHash=H0)), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", PCR0)


@pytest.mark.parametrize("previous", [[], [build(OLD, "FAILED", exported(PCR0=OLD_PCR0))]])
def test_a_previous_build_gone_or_failed_gives_no_previous(
    codebuild: tuple[Any, Stubber], previous: list[Any]
) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(previous=OLD)))
    expect_get(stubber, OLD, *previous)
    data = check_complete(request("Update", NEW, old=props(SourceHash=H0)), client)["Data"]
    assert (data["PreviousPcr0"], data["AcceptedPcr0"]) == ("", PCR0)


def test_an_update_over_a_physical_id_that_is_no_build_has_no_previous(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_start(stubber, source_hash=H2)
    event = request("Update", "CREATE_FAILED", old=props())
    event["ResourceProperties"]["SourceHash"] = H2
    assert handle_event(event, client) == {"PhysicalResourceId": NEW}


def test_an_update_without_code_change_rebuilds_a_build_codebuild_forgot(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD)  # buildsNotFound
    expect_start(stubber)
    assert handle_event(request("Update", OLD, old=props(), RetirePrevious="true"), client) == {
        "PhysicalResourceId": NEW
    }


def test_a_replaced_project_builds_anew_without_a_previous(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_start(stubber)
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
    assert answer == {"PhysicalResourceId": NEW}  # CloudFormation keeps the id on Delete
    assert check_complete(in_one_invocation(request("Delete", NEW), answer), client) == {"IsComplete": True}


def test_deleting_a_finished_build_calls_nothing_but_its_status(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, OLD, build(OLD, "SUCCEEDED", exported()))  # EIF objects stay: no S3 call at all
    assert handle_event(request("Delete", OLD), client) == {"PhysicalResourceId": OLD}


def test_deleting_what_is_no_build_of_the_project_calls_nothing(codebuild: tuple[Any, Stubber]) -> None:
    client, _ = codebuild
    for physical_id in (
        "CREATE_FAILED",
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
        ("NITRO_CLI_VERSION", "Nitro CLI 1.4.2"),
        ("NITRO_CLI_VERSION", "1.4"),
        # What a forged answer would carry into demo.env and the user data: each refused by its own name.
        ("PCR0", "a" * 96 + "\n"),
        ("EIF_KEY", "eif/" + "e" * 64 + ".eif\nEND_OF_DEMO_ENV"),
        ("EIF_VERSION", "v1$(touch /tmp/pwned)"),
        ("EIF_VERSION", "v1'x"),
        ("EIF_VERSION", 'v1"x'),
        ("EIF_VERSION", "v" * 1025),
        ("NITRO_CLI_VERSION", "1.4.2;reboot"),
        ("SOURCE_HASH", "hash-1"),
        ("SOURCE_HASH", "1" * 63),
        ("PREVIOUS_BUILD_ID", f"{PROJECT}:not-a-uuid"),
        ("PREVIOUS_BUILD_ID", ""),
        # The host bundle's values reach the user data and demo.env just as the EIF's do.
        ("BUNDLE_KEY", "bundle/../eif/x.tar.gz"),
        ("BUNDLE_KEY", f"bundle/{BUNDLE_SHA256}.zip"),
        ("BUNDLE_KEY", f"{BUNDLE_KEY}'$(reboot)'"),
        ("BUNDLE_VERSION", ""),
        ("BUNDLE_VERSION", "v1$(touch /tmp/pwned)"),
        ("BUNDLE_VERSION", "v1'x"),
        ("BUNDLE_SHA256", "B" * 64),
        ("BUNDLE_SHA256", "b" * 63),
        ("BUNDLE_SHA256", "b" * 64 + "\n"),
    ],
)
def test_malformed_exported_variables_are_refused_by_name(
    codebuild: tuple[Any, Stubber], name: str, value: str
) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(**{name: value})))
    with pytest.raises(BuildError, match=f"the build's exported {name} "):
        check_complete(request("Create", NEW), client)


def test_a_build_that_recorded_no_nitro_cli_version_says_unknown(codebuild: tuple[Any, Stubber]) -> None:
    # A build made before the buildspec recorded it: a revert to it must not fail on a diagnostic.
    client, stubber = codebuild
    variables = exported()
    del variables["NITRO_CLI_VERSION"]
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", variables))
    assert check_complete(request("Create", NEW), client)["Data"]["NitroCliVersion"] == "unknown"


@pytest.mark.parametrize(
    "name", ["PCR0", "EIF_KEY", "EIF_VERSION", "SOURCE_HASH", "BUNDLE_KEY", "BUNDLE_VERSION", "BUNDLE_SHA256"]
)
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


def test_a_build_made_before_bundles_answers_without_bundle_attributes(
    codebuild: tuple[Any, Stubber],
) -> None:
    # The rollback of an update from a stack whose hosts read the code asset returns to such a build; the old
    # template reads no Bundle* attribute. A new template that does fails in CloudFormation on the attribute.
    client, stubber = codebuild
    variables = {k: v for k, v in exported().items() if not k.startswith("BUNDLE_")}
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", variables))
    data = check_complete(request("Create", NEW), client)["Data"]
    assert not [name for name in data if name.startswith("Bundle")]
    assert data["EifVersion"] == EIF_VERSION


def test_an_unversioned_bundle_is_refused(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(BUNDLE_VERSION="null")))
    with pytest.raises(BuildError, match="BUNDLE_VERSION is 'null'"):
        check_complete(request("Create", NEW), client)


def test_a_bundle_key_that_does_not_name_its_checksum_is_refused(codebuild: tuple[Any, Stubber]) -> None:
    # Both of their forms, but the key would let a host fetch other bytes than the checksum says it gets.
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "SUCCEEDED", exported(BUNDLE_SHA256="c" * 64)))
    with pytest.raises(BuildError, match="does not name its BUNDLE_SHA256"):
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
    assert len(str(failure.value)) < messages.MAX_SHOWN_CHARS + 200


def test_a_start_build_answer_that_is_no_build_id_of_the_project_is_refused(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    stubber.add_response("start_build", {"build": {"id": "SomeOtherProject:" + NEW.split(":")[1]}})
    with pytest.raises(BuildError, match="StartBuild answered 'SomeOtherProject:"):
        handle_event(request("Create"), client)


def test_a_concurrent_build_quota_refusal_names_the_quota_and_how_to_raise_it(
    codebuild: tuple[Any, Stubber], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new account may have a quota of 0 (awslabs/landing-zone-accelerator-on-aws#1013).
    client, stubber = codebuild
    monkeypatch.setenv(messages.QUOTA_NAME_ENV, "Concurrently running builds for Linux/Medium environment")
    stubber.add_client_error(
        "start_build",
        service_error_code="AccountLimitExceededException",
        service_message="Cannot have more than 0 builds in queue for the account",
        http_status_code=400,
    )
    with pytest.raises(BuildError) as failure:
        handle_event(request("Create"), client)
    message = str(failure.value)
    assert f"CodeBuild refused to start a build of {PROJECT}" in message
    assert "Cannot have more than 0 builds in queue for the account" in message
    assert "'Concurrently running builds for Linux/Medium environment'" in message
    assert "Service Quotas console" in message
    assert "aws service-quotas request-service-quota-increase --service-code codebuild" in message


def test_another_start_build_refusal_is_not_called_a_quota(codebuild: tuple[Any, Stubber]) -> None:
    client, stubber = codebuild
    stubber.add_client_error(
        "start_build", service_error_code="ResourceNotFoundException", http_status_code=400
    )
    with pytest.raises(botocore.exceptions.ClientError, match="ResourceNotFoundException"):
        handle_event(request("Create"), client)


# CloudFormation's rollback of a failed update, as we read its documentation (docs/infra.md, *Rollback*): a
# custom resource whose update returned a new
# physical id was replaced ("If the value returned is different, CloudFormation recognizes the update as a
# replacement and sends a delete request to the old resource", User Guide, custom resource request types,
# Update/Delete: PhysicalResourceId); after a failed update the replacement is what the cleanup removes
# (UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS: "Ongoing removal of new resources for one or more stacks
# after a failed stack update", User Guide, stack status codes). No Update goes back to A: the stack keeps
# A's physical id and A's recorded attributes, and the handler sees only the Delete of B.


def test_a_failed_update_rolls_back_with_no_update_and_a_delete_of_the_new_build(
    codebuild: tuple[Any, Stubber],
) -> None:
    client, stubber = codebuild
    expect_start(stubber)
    create = request("Create")
    a_answer = handle_event(create, client)
    a_id = a_answer["PhysicalResourceId"]
    expect_get(stubber, a_id, build(a_id, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    a_data = attributes(client, create, a_answer)
    assert a_data["AcceptedPcr0"] == OLD_PCR0

    b_id = OLD  # the Stubber's StartBuild answers NEW; B gets OLD's id here so the two differ
    expect_get(stubber, a_id, build(a_id, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    stubber.add_response(
        "start_build",
        {"build": {"id": b_id, "buildStatus": "IN_PROGRESS"}},
        {
            "projectName": PROJECT,
            "sourceTypeOverride": "S3",
            "sourceLocationOverride": LOCATION,
            "environmentVariablesOverride": [
                {"name": "PREVIOUS_BUILD_ID", "value": a_id, "type": "PLAINTEXT"},
                {"name": "SOURCE_HASH", "value": H2, "type": "PLAINTEXT"},
            ],
            "idempotencyToken": REQUEST_ID,
        },
    )
    update = request("Update", a_id, old=props(), SourceHash=H2)
    b_answer = handle_event(update, client)
    assert b_answer == {"PhysicalResourceId": b_id}  # a new physical id: a replacement
    expect_get(stubber, b_id, build(b_id, "SUCCEEDED", exported(a_id, source=H2, EIF_VERSION="b-v")))
    expect_get(stubber, a_id, build(a_id, "SUCCEEDED", exported(PCR0=OLD_PCR0)))
    b_data = attributes(client, update, b_answer)
    assert (b_data["PreviousPcr0"], b_data["AcceptedPcr0"]) == (OLD_PCR0, f"{PCR0},{OLD_PCR0}")

    # The roll fails (B's host fails its canary). The rollback: no request for A at all; the stack's
    # attributes are A's recorded ones again (a_data, untouched by anything below); then Delete of B.
    expect_get(stubber, b_id, build(b_id, "SUCCEEDED", exported(a_id, source=H2)))  # no stop_build queued
    cleanup = request("Delete", b_id, SourceHash=H2)
    answer = handle_event(cleanup, client)
    assert answer == {"PhysicalResourceId": b_id}
    assert check_complete(in_one_invocation(cleanup, answer), client) == {"IsComplete": True}
    # What the stack holds again: A's recorded attributes, so the key accepts A alone and the hosts'
    # launch template names A's EIF version, which nothing above removed.
    assert (a_data["Pcr0"], a_data["EifVersion"], a_data["AcceptedPcr0"]) == (OLD_PCR0, EIF_VERSION, OLD_PCR0)


def test_the_cleanup_delete_of_a_new_build_still_running_stops_that_build_only(
    codebuild: tuple[Any, Stubber],
) -> None:
    # The update failed elsewhere while B was still building: the Delete of B stops B; A is never named.
    client, stubber = codebuild
    expect_get(stubber, NEW, build(NEW, "IN_PROGRESS", environment=started_with(OLD, H2)))
    stubber.add_response("stop_build", {"build": {"id": NEW, "buildStatus": "STOPPED"}}, {"id": NEW})
    assert handle_event(request("Delete", NEW, SourceHash=H2), client) == {"PhysicalResourceId": NEW}

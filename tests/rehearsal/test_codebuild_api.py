"""The CodeBuild stand-in's API as botocore speaks it (JSON 1.1, codebuild/2016-10-06 model): refusals,
unknown builds, and the container credentials endpoint botocore's provider reads. (Builds themselves run
in systemd-nspawn: the rehearsal runs them.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.credentials import ContainerProvider
from botocore.exceptions import ClientError

from rehearsal import codebuild
from rehearsal.codebuild_exec import BuildExecution
from rehearsal.codebuild_run import Machine


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    config = {"region": "us-east-1", "account": "123456789012", "projects": {}}
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    codebuild.Handler.service = codebuild.Service(tmp_path / "config.json")
    server = ThreadingHTTPServer(("127.0.0.1", 0), codebuild.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    yield (
        boto3.session.Session(
            aws_access_key_id="A", aws_secret_access_key="B", region_name="us-east-1"
        ).client("codebuild", endpoint_url=url),
        url,
    )
    server.shutdown()


def test_an_unknown_project_is_resource_not_found(client: Any) -> None:
    api, _ = client
    with pytest.raises(ClientError) as refused:
        api.start_build(projectName="Nope")
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert (
        "arn:aws:codebuild:us-east-1:123456789012:project/Nope" in refused.value.response["Error"]["Message"]
    )


def test_an_override_the_stand_in_lacks_is_refused_by_name(client: Any) -> None:
    api, _ = client
    with pytest.raises(ClientError, match="imageOverride"):
        api.start_build(projectName="P", imageOverride="aws/codebuild/standard:7.0")


def test_unknown_build_ids_come_back_not_found(client: Any) -> None:
    api, _ = client
    answer = api.batch_get_builds(ids=["P:00000000-0000-0000-0000-000000000000"])
    assert answer["builds"] == []
    assert answer["buildsNotFound"] == ["P:00000000-0000-0000-0000-000000000000"]


def test_the_build_containers_credentials_are_the_service_roles(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = client
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"{url}/credentials")
    credentials = ContainerProvider().load()
    assert credentials is not None
    assert credentials.get_frozen_credentials().access_key == codebuild.ROLE_ACCESS_KEY


def test_a_repeated_idempotency_token_answers_the_build_it_started(client: Any, tmp_path: Path) -> None:
    api, _ = client
    service = codebuild.Handler.service
    build_id = "P:00000000-0000-0000-0000-000000000001"
    machine = Machine([tmp_path], tmp_path, tmp_path, "us-east-1")
    service.builds[build_id] = BuildExecution(
        build_id, 1, {"name": "P"}, {}, None, {"account": "123456789012"}, machine
    )  # registered, never started: no container here
    body = {"projectName": "P", "idempotencyToken": "request-1"}
    service.tokens["request-1"] = (time.monotonic(), json.dumps(body, sort_keys=True), build_id)
    assert api.start_build(**body)["build"]["id"] == build_id
    with pytest.raises(ClientError, match="was used with other parameters"):
        api.start_build(projectName="P", idempotencyToken="request-1", buildspecOverride="x")

"""The build half of the stack's deploy: the CodeBuild projects as the stand-in serves them, and the
enclave image's custom resource (Custom::EnclaveImageBuild) through the stack's own handler function, which
answers on a stand-in of the request's presigned ResponseURL (rehearsal/provider.py).

Projects come from the template's AWS::CodeBuild::Project resources, rendered (Source with its BuildSpec
and Location, Environment with PrivilegedMode and EnvironmentVariables, TimeoutInMinutes, ServiceRole)
and written to the stand-in's config file, which it re-reads on every StartBuild. The custom resource's
events carry its rendered properties (ServiceToken included, all strings, as CloudFormation sends them);
its Data become `Fn::GetAtt [<Build>, Pcr0|...]` and its physical id its Ref.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal import keys
from rehearsal.cfn import PSEUDO
from rehearsal.cloud import STACK_ID, Cloud
from rehearsal.provider import (
    CustomResource,
    Response,
    ResponseEndpoint,
    load_function,
    service_token_function,
)
from rehearsal.standins.host import write_json

BUILD_TYPE = "Custom::EnclaveImageBuild"
PROJECT_TYPE = "AWS::CodeBuild::Project"
PROVIDER_ACCESS_KEY = "LOCALPROVIDERROLE001"  # the handler's Lambda role: a key of its own


def project_config(cloud: Cloud) -> dict[str, dict[str, Any]]:
    """The template's CodeBuild projects, rendered, by physical name (their Ref)."""
    projects = {}
    account, region = PSEUDO["AWS::AccountId"], cloud.region
    for logical_id in cloud.synthesized.resources(PROJECT_TYPE):
        props = keys.render_tree(cloud.resolver(), cloud.synthesized.properties(logical_id))
        name = str(props.get("Name") or cloud.physical_name(logical_id))
        arn = f"arn:aws:codebuild:{region}:{account}:project/{name}"
        cloud.refs[logical_id] = name
        cloud.attributes[(logical_id, "Arn")] = arn
        source, environment = props.get("Source", {}), props.get("Environment", {})
        projects[name] = {
            "name": name,
            "arn": arn,
            "source": {"type": source.get("Type"), "location": source.get("Location", "")},
            "buildspec": source.get("BuildSpec"),
            "privilegedMode": str(environment.get("PrivilegedMode", "false")).lower() == "true",
            "image": environment.get("Image", ""),
            "computeType": environment.get("ComputeType", ""),
            "type": environment.get("Type", ""),
            "environmentVariables": [
                {"name": v["Name"], "value": str(v["Value"]), "type": v.get("Type", "PLAINTEXT")}
                for v in environment.get("EnvironmentVariables", [])
            ],
            "timeoutInMinutes": props.get("TimeoutInMinutes"),
            "serviceRole": props.get("ServiceRole", ""),
        }
    return projects


def write_codebuild_config(path: Path, cloud: Cloud) -> None:
    """The stand-in's config file with the projects as the template has them now (the rest, layers,
    namespace and endpoints, as run.host_services wrote it)."""
    config = {**json.loads(path.read_text(encoding="utf-8")), "projects": project_config(cloud)}
    write_json(path, config)


@dataclass
class EnclaveImageBuild:
    """The custom resource, driven as CloudFormation drives it (the rehearsal's Stack keeps its responses)."""

    cloud: Cloud
    codebuild_endpoint: str
    logical_id: str = ""
    provider: CustomResource | None = None
    properties: dict[str, str] = field(default_factory=dict)
    physical_id: str = ""
    endpoint: ResponseEndpoint = field(default_factory=ResponseEndpoint)

    def _resource(self) -> dict[str, Any]:
        self.logical_id, resource = self.cloud.synthesized.only(BUILD_TYPE)
        return resource

    def _provider(self) -> CustomResource:
        if self.provider is None:
            env = {
                "AWS_ENDPOINT_URL": self.cloud.endpoint,
                "AWS_ENDPOINT_URL_CODEBUILD": self.codebuild_endpoint,
                "AWS_ACCESS_KEY_ID": PROVIDER_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": "local-provider-role-secret",
                "AWS_REGION": self.cloud.region,
                "AWS_DEFAULT_REGION": self.cloud.region,
            }
            synthesized, resolver = self.cloud.synthesized, self.cloud.resolver()
            function_id = service_token_function(self._resource())
            self.provider = CustomResource(
                load_function(synthesized, function_id, resolver, env), self.endpoint, STACK_ID
            )
        return self.provider

    @contextmanager
    def serving(self) -> Iterator[EnclaveImageBuild]:
        """The stand-in response endpoint, up while the deploy and the roll send requests."""
        with self.endpoint.serving():
            yield self

    def _rendered(self) -> dict[str, str]:
        resource = self._resource()
        rendered = keys.render_tree(self.cloud.resolver(), resource["Properties"])
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in rendered.items()}

    def _done(self, response: Response) -> Response:
        self.physical_id = response.physical_id
        self.cloud.set_attributes(self.logical_id, response.physical_id, response.data)
        return response

    def create(self) -> Response:
        provider = self._provider()
        self.properties = self._rendered()
        return self._done(
            provider.request("Create", self.logical_id, self._resource(), ResourceProperties=self.properties)
        )

    def update(self) -> tuple[Response, tuple[str, dict[str, str]] | None]:
        """An Update with the template's new properties; back: the answer and what a replacement leaves
        for the cleanup phase's Delete (the old physical id and properties; None when the id stayed)."""
        provider, old = self._provider(), self.properties
        self.properties, previous_id = self._rendered(), self.physical_id
        response = provider.request(
            "Update",
            self.logical_id,
            self._resource(),
            ResourceProperties=self.properties,
            OldResourceProperties=old,
            PhysicalResourceId=previous_id,
        )
        self._done(response)
        return response, ((previous_id, old) if response.physical_id != previous_id else None)

    def restore(self, physical_id: str, properties: Mapping[str, str], data: Mapping[str, str]) -> None:
        """A failed update's rollback of a replaced custom resource: CloudFormation sends it no request; the
        stack's record (physical id, properties, attributes) is the old resource's again."""
        self.physical_id, self.properties = physical_id, dict(properties)
        self.cloud.set_attributes(self.logical_id, physical_id, data)

    def delete(self, physical_id: str, properties: Mapping[str, str]) -> Response:
        """The cleanup phase's Delete of a replaced physical id (with that resource's old properties)."""
        return self._provider().request(
            "Delete",
            self.logical_id,
            self._resource(),
            ResourceProperties=dict(properties),
            PhysicalResourceId=physical_id,
        )

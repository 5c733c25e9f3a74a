"""Which CodeBuild build a Custom::EnclaveImageBuild request stands on, and the attributes from it.

`handle_event` starts one build per code change (or returns to the previous one when a deploy reverts to
its code, or stops a running one on Delete) and names the build as the physical id (plus RETURNING_FROM when
it returns to the previous build);
`check_complete` reads that build and, once it SUCCEEDED, returns its measurements, the EIF's and the host
bundle's keys and versions (and the bundle's SHA-256) from CodeBuild's own API (the build's exported
variables), each checked against its exact form, never from anything a host can write. custom_resource.py
runs the two in one invocation and answers CloudFormation.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .messages import failure_reason, quota_refusal, short

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)

# The exact form of every value a build exports. The host's reader of demo.env checks the same values
# against infra/constructs/host/demo-env.patterns (a test holds the two equal).
PCR_RE = re.compile(r"[0-9a-f]{96}")
EIF_KEY_RE = re.compile(r"eif/[0-9a-f]{64}\.eif")
# S3 version ids are "Unicode, UTF-8 encoded, URL-ready, opaque strings that are no more than 1,024 bytes
# long" (S3 API reference, e.g. the versionId of GetObject; AWS's example
# 3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo). We accept the URL-safe base64 subset
# S3 is seen to use: nothing a shell or systemd's EnvironmentFile= would read as quoting, expansion or
# whitespace. "null" means an unversioned object and is refused separately.
EIF_VERSION_RE = re.compile(r"[A-Za-z0-9._+/=-]{1,1024}")
# The host bundle (what a host installs: relay, producer, ops, host files), content-addressed like the EIF:
# its key names the SHA-256 of its bytes, exported again as BUNDLE_SHA256 (the host checks the bytes against
# it before unpacking anything); its version id has the EIF's form.
BUNDLE_KEY_RE = re.compile(r"bundle/[0-9a-f]{64}\.tar\.gz")
BUNDLE_SHA256_RE = re.compile(r"[0-9a-f]{64}")
# CodeBuild build ids are "<project name>:<uuid>" (project names: 2-150 of A-Za-z0-9 - _, CodeBuild quotas).
BUILD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,149}:[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")
# The code asset's hash the build was started for: CDK's asset hash, a SHA-256 in lower-case hex.
SOURCE_HASH_RE = re.compile(r"[0-9a-f]{64}")
# nitro-cli's version as build-eif.sh records it: clap prints "Nitro CLI X.Y.Z" for `nitro-cli --version`
# (aws/aws-nitro-enclaves-cli src/main.rs: Command::new("Nitro CLI").version(CARGO_PKG_VERSION)).
NITRO_CLI_VERSION_RE = re.compile(r"[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}")
# What the buildspec exports (its env/exported-variables lists exactly these; tests/infra/test_buildspec.py).
EXPORTED_VARIABLES = (
    "PCR0",
    "PCR1",
    "PCR2",
    "EIF_KEY",
    "EIF_VERSION",
    "PREVIOUS_BUILD_ID",
    "SOURCE_HASH",
    "NITRO_CLI_VERSION",
    "BUNDLE_KEY",
    "BUNDLE_VERSION",
    "BUNDLE_SHA256",
)
# PREVIOUS_BUILD_ID of a build that replaces none: CodeBuild has refused empty environment variable values
# before, so neither the project nor a StartBuild override ever carries "".
NO_PREVIOUS = "none"
# NitroCliVersion of a build that exported none (made before the buildspec recorded it).
UNKNOWN_VERSION = "unknown"
# handle_event's field for check_complete when an Update returns to the previous build: the build left.
RETURNING_FROM = "ReturningFrom"

Event = dict[str, Any]
Client = Any  # a botocore CodeBuild client (boto3-stubs for codebuild is not a project dependency)


class BuildError(RuntimeError):
    """The build failed, was refused, or produced values that are not what the stack may pin."""


def handle_event(event: Event, client: Client) -> Event:
    """Create, or Update with a new SourceHash: start a build whose id becomes the physical id (so each code
    change is a replacement). Update: see _update. Delete: stop the build if still running, nothing else.
    CloudFormation deletes a replaced physical id in the cleanup phase: the old build after a successful
    update, the NEW one after a failed update (it restores the old resource and sends no Update back); so
    the EIF objects stay (the hosts that remain download theirs) and destroying the stack empties the
    bucket."""
    props = event["ResourceProperties"]
    kind = event["RequestType"]
    if kind == "Create":
        return {"PhysicalResourceId": _start(client, event, previous=NO_PREVIOUS)}
    if kind == "Update":
        return _update(event, client)
    if kind == "Delete":
        _stop_if_running(client, event["PhysicalResourceId"], props["ProjectName"])
        return {"PhysicalResourceId": event["PhysicalResourceId"]}
    raise BuildError(f"unknown RequestType {kind!r}")


def _update(event: Event, client: Client) -> Event:
    """Which build an Update stands on; a build is started only when no suitable one exists.

    A deploy may revert the code to that of the build the current one replaced (A->B->A), so the source
    hash alone cannot tell "new code" from "back to the code that ran before". (CloudFormation's rollback
    of a failed update sends no Update: it restores the old physical id and attributes and deletes the new
    id.) A build records the SourceHash it was started with (exported SOURCE_HASH), so:
    1. the current build is of this source: keep it (no code change; Data is recomputed from it alone);
    2. the build it replaced (its PREVIOUS_BUILD_ID) SUCCEEDED from this source: return to it (the revert,
       no build). Its Data is its own (PCR0, EIF version), but its previous is the build being left
       (RETURNING_FROM, see build_data): the key is updated before the group, and the group replaces the
       left build's hosts one by one, so they must still decrypt meanwhile. A later Update that keeps
       this physical id recomputes from the build alone (case 1): by then the roll is over;
    3. otherwise build, with the current build as previous. A replaced project builds without a previous
       one (the handlers' roles may read builds of their own project only)."""
    props = event["ResourceProperties"]
    project, source_hash = props["ProjectName"], str(props["SourceHash"])
    current_id: str = event["PhysicalResourceId"]
    if not _is_own_build(current_id, project):
        return {"PhysicalResourceId": _start(client, event, previous=NO_PREVIOUS)}
    current = _find_build(client, current_id)
    if current is None:
        logger.info("CodeBuild has no build %s any more: building anew without a previous", current_id)
        return {"PhysicalResourceId": _start(client, event, previous=NO_PREVIOUS)}
    if _started_with(current, "SOURCE_HASH") == source_hash:
        logger.info("source unchanged: no build, keeping %s", current_id)
        return {"PhysicalResourceId": current_id}
    previous_id = _started_with(current, "PREVIOUS_BUILD_ID")
    if previous_id != current_id and _is_own_build(previous_id, project):
        previous = _find_build(client, previous_id)
        if (
            previous is not None
            and previous.get("buildStatus") == "SUCCEEDED"
            and _started_with(previous, "SOURCE_HASH") == source_hash
        ):
            logger.info(
                "back to the source of %s: no build, returning to it from %s", previous_id, current_id
            )
            return {"PhysicalResourceId": previous_id, RETURNING_FROM: current_id}
    return {"PhysicalResourceId": _start(client, event, previous=current_id)}


def check_complete(event: Event, client: Client) -> Event:
    if event["RequestType"] == "Delete":
        return {"IsComplete": True}
    build = _get_build(client, event["PhysicalResourceId"])
    status = build.get("buildStatus", "")
    if status == "IN_PROGRESS":
        return {"IsComplete": False}
    if status != "SUCCEEDED":
        raise BuildError(failure_reason(build))
    data = build_data(client, build, event["ResourceProperties"], str(event.get(RETURNING_FROM, "")))
    return {"IsComplete": True, "Data": data}


def build_data(client: Client, build: Event, props: Event, returning_from: str = "") -> dict[str, str]:
    """The custom resource's attributes from one SUCCEEDED build, each validated by name. Its previous
    PCR0 is that of the build being left when handle_event returned to this one (returning_from) and that
    build SUCCEEDED; otherwise that of the build it replaced; none with RetirePrevious."""
    exported = _exported(build)
    pcr0, pcr1, pcr2 = (_checked(exported, name, PCR_RE) for name in ("PCR0", "PCR1", "PCR2"))
    eif_key = _checked(exported, "EIF_KEY", EIF_KEY_RE)
    eif_version = _checked(exported, "EIF_VERSION", EIF_VERSION_RE)
    nitro_cli_version = _nitro_cli_version(exported)
    _checked(exported, "SOURCE_HASH", SOURCE_HASH_RE)
    if exported.get("PREVIOUS_BUILD_ID", NO_PREVIOUS) != NO_PREVIOUS:
        _checked(exported, "PREVIOUS_BUILD_ID", BUILD_ID_RE)
    if eif_version == "null":
        raise BuildError("the build's exported EIF_VERSION is 'null': the EIF bucket is not versioned")
    bundle = _bundle(exported)
    expected = str(props.get("ExpectedPcr0", "")).strip().lower()
    if expected and expected != pcr0:
        raise BuildError(f"the build's PCR0 {pcr0} differs from enclave_pcr0 {expected}")
    previous = _previous_pcr0(client, build, props, returning_from)
    if previous == pcr0:
        previous = ""  # the key policy never lists one value twice
    return {
        "Pcr0": pcr0,
        "Pcr1": pcr1,
        "Pcr2": pcr2,
        "EifKey": eif_key,
        "EifVersion": eif_version,
        "PreviousPcr0": previous,
        "AcceptedPcr0": f"{pcr0},{previous}" if previous else pcr0,
        "NitroCliVersion": nitro_cli_version,
        **bundle,
    }


def _bundle(exported: dict[str, str]) -> dict[str, str]:
    """The host bundle's key, version and SHA-256, each of its form, the key naming that same SHA-256.
    A build that exported none of them (made before the buildspec wrote a bundle) has no bundle attributes:
    the rollback of a stack whose old template does not read them still returns to it, and a template
    that reads them fails in CloudFormation on the missing attribute. One or two of them is refused."""
    if not any(name in exported for name in ("BUNDLE_KEY", "BUNDLE_VERSION", "BUNDLE_SHA256")):
        logger.info("the build exported no host bundle (made before bundles): no Bundle* attributes")
        return {}
    key = _checked(exported, "BUNDLE_KEY", BUNDLE_KEY_RE)
    version = _checked(exported, "BUNDLE_VERSION", EIF_VERSION_RE)
    sha256 = _checked(exported, "BUNDLE_SHA256", BUNDLE_SHA256_RE)
    if version == "null":
        raise BuildError("the build's exported BUNDLE_VERSION is 'null': the EIF bucket is not versioned")
    if key != f"bundle/{sha256}.tar.gz":
        raise BuildError(
            f"the build's exported BUNDLE_KEY {key!r} does not name its BUNDLE_SHA256 {sha256!r}"
        )
    return {"BundleKey": key, "BundleVersion": version, "BundleSha256": sha256}


def _nitro_cli_version(exported: dict[str, str]) -> str:
    """X.Y.Z the build recorded; UNKNOWN_VERSION for a build made before the buildspec recorded it (a
    revert may return to one, and must not fail for want of a diagnostic); anything else is refused."""
    if "NITRO_CLI_VERSION" not in exported:
        return UNKNOWN_VERSION
    return _checked(exported, "NITRO_CLI_VERSION", NITRO_CLI_VERSION_RE)


def _start(client: Client, event: Event, *, previous: str) -> str:
    """StartBuild, idempotent per CloudFormation request: CloudFormation invokes the function
    asynchronously, and an event Lambda delivers twice (at-least-once) repeats StartBuild with the same
    idempotencyToken (valid 5 minutes, botocore's CodeBuild model), which starts no second build; the
    function's queue drops events older than that (enclave_image.MAX_EVENT_AGE_S)."""
    props = event["ResourceProperties"]
    overrides = [
        {"name": "PREVIOUS_BUILD_ID", "value": previous, "type": "PLAINTEXT"},
        {"name": "SOURCE_HASH", "value": str(props["SourceHash"]), "type": "PLAINTEXT"},
    ]
    try:
        answer = client.start_build(
            projectName=props["ProjectName"],
            sourceTypeOverride="S3",
            sourceLocationOverride=props["SourceLocation"],
            environmentVariablesOverride=overrides,
            idempotencyToken=event["RequestId"],
        )
    except client.exceptions.AccountLimitExceededException as error:
        raise BuildError(quota_refusal(props["ProjectName"], str(error))) from error
    build_id = str(answer["build"]["id"])
    if not _is_own_build(build_id, props["ProjectName"]):
        raise BuildError(f"StartBuild answered {short(build_id)!r}, not a build id of {props['ProjectName']}")
    logger.info("started %s (previous build %s)", build_id, previous)
    return build_id


def _stop_if_running(client: Client, build_id: str, project: str) -> None:
    if not _is_own_build(build_id, project):
        logger.info("physical id %s is not a build of %s: nothing to stop", build_id, project)
        return
    build = _find_build(client, build_id)
    if build is not None and build.get("buildStatus") == "IN_PROGRESS":
        client.stop_build(id=build_id)
        logger.info("stopped %s", build_id)


def _get_build(client: Client, build_id: str) -> Event:
    build = _find_build(client, build_id)
    if build is None:
        raise BuildError(f"CodeBuild has no build {build_id!r}")
    return build


def _find_build(client: Client, build_id: str) -> Event | None:
    builds = client.batch_get_builds(ids=[build_id]).get("builds", [])
    build: Event | None = builds[0] if builds else None
    return build


def _previous_pcr0(client: Client, build: Event, props: Event, returning_from: str) -> str:
    """With RetirePrevious none; else PCR0 of the build being left (returning_from) if it SUCCEEDED, else
    of the build this one replaced (the PREVIOUS_BUILD_ID it was started with, exported back by the
    buildspec), read from CodeBuild; "" when there is none or it did not succeed."""
    if _is_true(props.get("RetirePrevious")):
        return ""
    if returning_from:
        pcr0 = _succeeded_pcr0(client, _own_build_id(returning_from, RETURNING_FROM, props))
        if pcr0:
            return pcr0
    previous_id = _exported(build).get("PREVIOUS_BUILD_ID", "")
    if previous_id in ("", NO_PREVIOUS) or previous_id == build.get("id"):
        return ""
    return _succeeded_pcr0(
        client, _own_build_id(previous_id, "the build's exported PREVIOUS_BUILD_ID", props)
    )


def _own_build_id(build_id: str, what: str, props: Event) -> str:
    if not _is_own_build(build_id, props["ProjectName"]):
        raise BuildError(f"{what} {short(build_id)!r} is not a build id")
    return build_id


def _succeeded_pcr0(client: Client, build_id: str) -> str:
    found = _find_build(client, build_id)
    if found is None or found.get("buildStatus") != "SUCCEEDED":
        logger.info("build %s not found or not SUCCEEDED: no PCR0 from it", build_id)
        return ""
    pcr0 = _exported(found).get("PCR0", "")
    return pcr0 if PCR_RE.fullmatch(pcr0) else ""


def _exported(build: Event) -> dict[str, str]:
    return {v["name"]: v.get("value", "") for v in build.get("exportedEnvironmentVariables", [])}


def _started_with(build: Event, name: str) -> str:
    """A value the handler started the build with: its exported copy, else the build's own environment
    (BatchGetBuilds' environment.environmentVariables, which carries StartBuild's overrides). Whether a
    build that did not succeed exports its variables is not documented; its environment is there
    whatever its status. Only PLAINTEXT values: nothing here is ever a parameter or secret reference."""
    exported = _exported(build)
    if name in exported:
        return exported[name]
    for variable in build.get("environment", {}).get("environmentVariables", []):
        if variable.get("name") == name and variable.get("type", "PLAINTEXT") == "PLAINTEXT":
            return str(variable.get("value", ""))
    return ""


def _checked(exported: dict[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = exported.get(name)
    if value is None:
        raise BuildError(f"the build exported no {name}")
    if not pattern.fullmatch(value):
        raise BuildError(f"the build's exported {name} {short(value)!r} does not match {pattern.pattern}")
    return value


def _is_own_build(build_id: str, project: str) -> bool:
    return bool(BUILD_ID_RE.fullmatch(build_id)) and build_id.split(":", 1)[0] == project


def _is_true(value: object) -> bool:
    return str(value).strip().lower() == "true"

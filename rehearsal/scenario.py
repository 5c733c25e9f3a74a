"""The stack's first deploy, in CloudFormation's order: the resources that need nothing built, the enclave
image's custom resource (its real handlers drive the CodeBuild stand-in, which runs the buildspec), the
parameters and the key from the build's attributes, then the group's first host from the launch template's
user data, which must signal SUCCESS (after its canary) before anything else happens; then cards.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal import blockers, cards, cfn_signals, deploy, keys
from rehearsal.cloud import Cloud
from rehearsal.deploy import EnclaveImageBuild
from rehearsal.hosts import Endpoints, Host, HostFailed, HostSpec, failed_units, wait_for_signal
from rehearsal.provider import Response
from rehearsal.run import RehearsalFailed, Run, Services

SEND_COUNT, LOAD_COUNT = 20, 200


@dataclass
class Stack:
    """The rehearsed stack: the run, its services, the emulator's resources and the build resource."""

    run: Run
    services: Services
    cloud: Cloud
    build: EnclaveImageBuild
    base: Path
    wheels: Path
    revert: str | None
    builds: list[Response] = field(default_factory=list)
    code_asset: str = ""  # the first synth's code asset hash (its manifest entry names the source folder)

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(http=self.services.http, https=self.services.https, signals=self.services.signals)

    def status(self, status: str) -> None:
        """The stack's state as SignalResource sees it (it takes signals only while a resource waits)."""
        cfn_signals.set_stack_status(self.services.stack_state, status)
        self.run.say(f"stack status {status}")

    def projects(self) -> None:
        deploy.write_codebuild_config(self.services.codebuild_config, self.cloud)

    def user_data(self) -> str:
        return blockers.revert_user_data(
            self.revert, self.cloud.synthesized.render_user_data(self.cloud.resolver())
        )


def build_step(stack: Stack, name: str, action: Callable[[], Response]) -> Response:
    """Run the custom resource's event; a FAILED response fails the rehearsal with its reason (the
    build's own reason and log link, as the handler words it) and where the build's log is here."""
    try:
        response = stack.run.step(name, action)
    except RehearsalFailed as failed:
        logs = sorted((stack.run.dir / "codebuild").glob("*/build.log"))
        where = f"\nbuild log here: {logs[-1]}" if logs else ""
        raise RehearsalFailed(failed.step, failed.reason + where) from failed
    stack.builds.append(response)
    stack.run.say(f"build {response.physical_id}: " + json.dumps(dict(response.data), sort_keys=True))
    return response


def first_deploy(stack: Stack) -> str:
    """Create everything up to the hosts; back: the launch template's rendered user data."""
    run, cloud = stack.run, stack.cloud
    run.step(
        "create the stack's resources in the emulator (queues, buckets, parameters, assets)",
        lambda: cloud.before_build(run.dir, blockers.asset_patch(stack.revert)),
    )
    run.say("stored, not enforced by the emulator: " + ", ".join(cloud.not_enforced))
    stack.projects()
    stack.status("CREATE_IN_PROGRESS")
    response = build_step(
        stack,
        "custom resource Create: the enclave image build (the stack's handlers, CodeBuild stand-in)",
        stack.build.create,
    )
    run.step("parameters from the build's attributes", lambda: cloud.create_parameters(skip_unresolved=False))
    key_arn = run.step("create the key with the template's key policy", lambda: keys.create_key(cloud))
    accepted = keys.accepted_images(keys.current_policy(cloud))
    run.say(f"key {key_arn}; attested Decrypt accepts PCR0 {sorted(accepted)}")
    if accepted != {response.data["Pcr0"]}:
        raise RehearsalFailed(
            "key policy", f"expected exactly the build's PCR0, the policy accepts {sorted(accepted)}"
        )
    return run.step("render the launch template's user data (Fn::Sub)", stack.user_data)


def signalled(stack: Stack, host: Host) -> None:
    """The host's SignalResource call: SUCCESS goes on, FAILURE fails naming the host, UniqueId and step."""
    stack.run.say(f"{host.spec.name} ({host.spec.instance_id}) booting; waiting for its SignalResource call")
    try:
        signal = wait_for_signal(host, stack.services.signals_record)
    except HostFailed as failed:
        raise RehearsalFailed(failed.step, failed.reason) from failed
    if signal.status != "SUCCESS":
        raise RehearsalFailed(
            "host signal",
            f"{host.spec.name} signalled FAILURE, UniqueId {signal.unique_id!r} (its instance id, then the "
            f"step that failed and its code, as the host words them)\n{failed_units(host.box)}",
        )
    stack.run.say(f"{host.spec.name}: SUCCESS signal, UniqueId {signal.unique_id} (canary passed)")


def first_cards(stack: Stack, host: Host) -> None:
    run = stack.run
    for argv in (["send", str(SEND_COUNT)], ["status"], ["attest"], ["send", str(LOAD_COUNT)]):
        cards.nitro_demo(run, host.box, argv, host.spec.name)
    cards.check_load(run, {host.spec.name: host.box}, f"nitro-demo send {LOAD_COUNT}")


def host_spec(number: int, netns: Path, own_namespace: bool) -> HostSpec:
    return HostSpec(f"host-{number}", f"i-0rehearsal{number:06d}", netns, own_namespace)

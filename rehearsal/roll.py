"""The stack update a code change makes, in CloudFormation's order, with the first host still serving:

1. the code asset changes (a harmless comment appended to an app/enclave file, so PCR0 changes) and is
   published under its new hash, which replaces the old one wherever the template names it, as a new
   synth would (SourceHash, the project's source, the launch template's user data);
2. the custom resource's Update: the handlers start a build with PREVIOUS_BUILD_ID, the new PCR0 comes
   back with the previous one; the key policy is re-rendered and put (PutKeyPolicy): it must accept
   exactly both; KMS takes a while to propagate it (rehearsal/propagation.py), and the old host keeps
   decrypting meanwhile;
3. the rolling update (MaxBatchSize 1, waiting on signals): a new host in a network namespace of its own
   boots from the new user data while cards are sent continuously and KMS still refuses the new image
   until the new host's canary has been refused a few times; it must signal SUCCESS with no card parked;
   cards go through both; then the old host is terminated and the replaced build's physical id is
   deleted in the cleanup phase, as CloudFormation does after a replacement;
4. `-c retire_previous=true` (the custom resource's RetirePrevious property): an Update that starts no
   build, and a policy that accepts only the new PCR0; the key policy evaluator refuses the old image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator

from app.local import processes
from app.local.processes import ChildSpec
from rehearsal import blockers, cards, keys
from rehearsal.hosts import Host, booted
from rehearsal.netns import Namespace
from rehearsal.propagation import Feeder, HeldPolicy, check_nothing_parked
from rehearsal.provider import Response
from rehearsal.run import RehearsalFailed
from rehearsal.scenario import LOAD_COUNT, SEND_COUNT, Stack, build_step, host_spec, signalled
from rehearsal.template import Synthesized, zip_directory

Patch = Callable[[str, bytes], bytes]

CHANGED_FILE = "app/enclave/__init__.py"
CHANGE = b"\n# rehearsal roll: a harmless change to the enclave code, so the image and its PCR0 change\n"


def harmless_change(name: str, content: bytes) -> bytes:
    return content + (CHANGE if name == CHANGED_FILE else b"")


def change_enclave_code(
    stack: Stack, change: Patch = harmless_change, changed_file: str = CHANGED_FILE
) -> str:
    """Publish the code asset (the first synth's source with `change` applied to each file) and switch the
    template to it; back: the new asset hash."""
    cloud = stack.cloud
    _, build = cloud.synthesized.only("Custom::EnclaveImageBuild")
    old_hash = cloud.resolver().text(build["Properties"]["SourceHash"])
    stack.code_asset = stack.code_asset or old_hash
    asset = cloud.synthesized.file_assets()[stack.code_asset]
    source = cloud.synthesized.outdir / asset["source"]["path"]
    if not (source / changed_file).is_file():
        raise LookupError(f"the code asset has no {changed_file} to change")
    revert = blockers.asset_patch(stack.revert)

    def patch(name: str, content: bytes) -> bytes:
        return change(name, revert(name, content))

    archive = zip_directory(source, stack.run.dir / "assets" / f"changed-code-{old_hash[:12]}.zip", patch)
    new_hash = hashlib.sha256(archive.read_bytes()).hexdigest()
    s3, body = cloud.client("s3"), archive.read_bytes()
    for destination in asset["destinations"].values():
        bucket = cloud.resolver().substitute(destination["bucketName"], {})
        key = cloud.resolver().substitute(destination["objectKey"], {}).replace(stack.code_asset, new_hash)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    cloud.synthesized = cloud.synthesized.with_text_replaced(old_hash, new_hash)
    return new_hash


def retire_previous(synthesized: Synthesized) -> Synthesized:
    """The template `-c retire_previous=true` gives: the build resource's RetirePrevious is "true"."""
    template = json.loads(json.dumps(synthesized.template))
    build_id, _ = synthesized.only("Custom::EnclaveImageBuild")
    template["Resources"][build_id]["Properties"]["RetirePrevious"] = "true"
    return Synthesized(template=template, outdir=synthesized.outdir)


def expect_accepts(stack: Stack, policy: dict[str, object], wanted: set[str], when: str) -> None:
    accepted = keys.accepted_images(policy)
    stack.run.say(f"key policy {when}: attested Decrypt accepts {sorted(accepted)}")
    if accepted != wanted:
        raise RehearsalFailed(
            f"key policy {when}", f"expected {sorted(wanted)}, it accepts {sorted(accepted)}"
        )


Replaced = tuple[str, dict[str, str]] | None


def update_build_and_key(stack: Stack, old_pcr0: str) -> tuple[str, Replaced, dict[str, object]]:
    """The build's Update and the key policy re-rendered; back: the new PCR0, the replaced build and the
    policy CloudFormation put, which the emulator gets only once KMS has "propagated" it."""
    run = stack.run
    new_hash = run.step(
        f"change the enclave code ({CHANGED_FILE}) and publish the code asset",
        lambda: change_enclave_code(stack),
    )
    run.say(f"code asset {new_hash}")
    stack.projects()  # the project's source names the new asset
    stack.status("UPDATE_IN_PROGRESS")
    replaced: list[tuple[str, dict[str, str]] | None] = []

    def update() -> Response:
        response, old = stack.build.update()
        replaced.append(old)
        return response

    response = build_step(
        stack, "custom resource Update: new SourceHash, the build started with PREVIOUS_BUILD_ID", update
    )
    new_pcr0 = response.data["Pcr0"]
    if new_pcr0 == old_pcr0 or response.data.get("PreviousPcr0") != old_pcr0:
        raise RehearsalFailed(
            "custom resource Update",
            f"expected a new PCR0 and PreviousPcr0 {old_pcr0}: {dict(response.data)}",
        )
    policy = run.step(
        "PutKeyPolicy: the template's key policy re-rendered (KMS has not propagated it yet)",
        lambda: keys.rendered_policy(stack.cloud),
    )
    expect_accepts(stack, policy, {new_pcr0, old_pcr0}, "during the roll")
    run.step(
        "parameters from the new build's attributes",
        lambda: stack.cloud.create_parameters(skip_unresolved=False),
    )
    return new_pcr0, replaced[0], policy


@contextlib.contextmanager
def second_namespace(stack: Stack, number: int = 2) -> Iterator[Namespace]:
    """A network namespace for host-<number>, its loopback bridged to the services' ports."""
    with Namespace(f"{stack.run.dir.name.lower()[-15:]}-{number}") as namespace:
        ports = ",".join(str(p) for p in stack.services.ports())
        bridge = ChildSpec("bridge", "rehearsal.bridge", ("--netns", str(namespace.path), "--ports", ports))
        with processes.running(bridge, stack.run.dir, processes.has_ready_line):
            stack.run.say(
                f"network namespace {namespace.name} for host-{number}, loopback ports {ports} bridged"
            )
            yield namespace


def roll(stack: Stack, old_host: Host, old_pcr0: str, after: Callable[[Stack, Host], None]) -> None:
    """The good roll and retire_previous; then `after` with the new host serving alone."""
    run = stack.run
    new_pcr0, replaced, policy = update_build_and_key(stack, old_pcr0)
    held = HeldPolicy(run, stack.cloud, dict(policy))
    cards.nitro_demo(
        run, old_host.box, ["send", str(SEND_COUNT)], f"{old_host.spec.name} (old PCR0, policy propagating)"
    )
    user_data = run.step("render the new launch template version's user data", stack.user_data)
    with second_namespace(stack) as namespace, contextlib.ExitStack() as hosts:
        spec = host_spec(2, namespace.path, own_namespace=True)
        feeder = Feeder(run, old_host.box, old_host.spec.name)
        with feeder.feeding():
            new_host = hosts.enter_context(booted(
                spec, cloud=stack.cloud, user_data=user_data, base=stack.base, wheels=stack.wheels,
                endpoints=stack.endpoints, run_dir=run.dir))  # fmt: skip
            with held.until_refused(new_host.root):
                signalled(stack, new_host)
        check_nothing_parked(run, stack.cloud, feeder, held, spec.name)
        both_hosts_serve(stack, old_host, new_host, (old_pcr0, new_pcr0))
        run.step(f"terminate {old_host.spec.name} (the rolling update's batch is done)", old_host.box.stop)
        stack.status("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
        if replaced is not None:
            old_id, old_properties = replaced
            run.step(f"cleanup: Delete of the replaced build {old_id}",
                     lambda: stack.build.delete(old_id, old_properties))  # fmt: skip
        stack.status("UPDATE_COMPLETE")
        cards.nitro_demo(run, new_host.box, ["send", str(SEND_COUNT)], f"{spec.name} alone")
        retire(stack, new_host, old_pcr0, new_pcr0)
        after(stack, new_host)


def both_hosts_serve(stack: Stack, old: Host, new: Host, pcr0s: tuple[str, str]) -> None:
    """The load while both hosts consume the one cards queue: every card ok, and whose host took it."""
    before = cards.load_figures(old.box).processed
    cards.nitro_demo(stack.run, new.box, ["send", str(LOAD_COUNT)], f"{new.spec.name} (both hosts consume)")
    found = cards.check_load(stack.run, {old.spec.name: old.box, new.spec.name: new.box}, "the roll's load")
    stack.run.say(
        f"the roll's {LOAD_COUNT} cards: {found[old.spec.name].processed - before} through {old.spec.name} "
        f"(PCR0 {pcr0s[0][:16]}...), {found[new.spec.name].processed} through {new.spec.name} "
        f"(PCR0 {pcr0s[1][:16]}...); none access_denied, none lost"
    )


def retire(stack: Stack, host: Host, old_pcr0: str, new_pcr0: str) -> None:
    run, cloud = stack.run, stack.cloud
    cloud.synthesized = retire_previous(cloud.synthesized)
    stack.status("UPDATE_IN_PROGRESS")
    builds_before = len(list((run.dir / "codebuild").glob("*/build.log")))
    response = build_step(
        stack, "custom resource Update: RetirePrevious true (no code change)", lambda: stack.build.update()[0]
    )
    started = len(list((run.dir / "codebuild").glob("*/build.log"))) - builds_before
    if response.data["Pcr0"] != new_pcr0 or response.data.get("PreviousPcr0") or started:
        raise RehearsalFailed("retire_previous", f"expected no build, PCR0 {new_pcr0} and no previous: "
                              f"{dict(response.data)}, {started} build(s) started")  # fmt: skip
    policy = run.step(
        "PutKeyPolicy: the policy without the previous PCR0", lambda: keys.update_key_policy(cloud)
    )
    expect_accepts(stack, policy, {new_pcr0}, "after retire_previous")
    for pcr0, wanted in ((old_pcr0, False), (new_pcr0, True)):
        allowed = keys.decides(policy, keys.key_arn(cloud), pcr0)
        verdict = "allowed" if allowed else "refused"
        run.say(f"key policy evaluator: attested Decrypt with PCR0 {pcr0[:16]}... {verdict}")
        if allowed != wanted:
            raise RehearsalFailed(
                "retire_previous", f"PCR0 {pcr0} should be {'allowed' if wanted else 'refused'}"
            )
    stack.status("UPDATE_COMPLETE")
    cards.nitro_demo(run, host.box, ["send", str(SEND_COUNT)], f"{host.spec.name} after retire_previous")

"""A roll whose new host fails its canary, and the stack's rollback replayed in CloudFormation's order.

The code change moves the enclave's KMS egress port (app/shared/settings.py: vsock 3:8000, where the
parent's vsock-proxy listens, becomes 3:8001), a mistake that builds, measures and boots: the new build C
replaces B (a new physical id, PREVIOUS_BUILD_ID B, AcceptedPcr0 "C,B"), the key policy is put, and host-3
boots from the new user data; its enclave cannot reach KMS, the canary fails (kms_unavailable is not retried)
and host-3 signals FAILURE before its relay ever starts. CloudFormation then rolls the update back:
- UPDATE_ROLLBACK_IN_PROGRESS, resources in reverse order of their updates (our assumption: no AWS page we
  found states the order; host-3 never serves, so this run passes under either order): the group's rolling
  update is rolled back first (host-3 terminated; host-2 already runs the old launch template version and
  stays),
  then the key policy is put back to the old one, rendered from B's recorded attributes, which the stack
  restores for the build resource without any request to its function;
- UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS: Delete of C's physical id, through the stack's function.
Cards are sent through host-2 the whole time; none may be parked or lost.
"""

from __future__ import annotations

import json

from rehearsal import cards, keys
from rehearsal.figures import RELAY_UNIT
from rehearsal.hosts import Host, HostFailed, booted, wait_for_signal
from rehearsal.propagation import FEED_COUNT, Feeder, dead_letter_depth
from rehearsal.provider import Response
from rehearsal.roll import change_enclave_code, expect_accepts, second_namespace
from rehearsal.run import RehearsalFailed
from rehearsal.scenario import SEND_COUNT, Stack, build_step, host_spec
from rehearsal.template import Synthesized

SETTINGS_FILE = "app/shared/settings.py"
GOOD_EGRESS = b'DEFAULT_KMS_EGRESS_URL = "vsock://3:8000"'
BAD_EGRESS = b'DEFAULT_KMS_EGRESS_URL = "vsock://3:8001"'
FAILED_STEP = "canary"  # the bootstrap step in host-3's FAILURE UniqueId


def wrong_egress_port(name: str, content: bytes) -> bytes:
    if name != SETTINGS_FILE:
        return content
    if GOOD_EGRESS not in content:
        raise LookupError(f"{SETTINGS_FILE} no longer holds {GOOD_EGRESS.decode()}")
    return content.replace(GOOD_EGRESS, BAD_EGRESS)


def without_retire(synthesized: Synthesized) -> Synthesized:
    """The next ordinary deploy's template: `-c retire_previous` not given, RetirePrevious "false"."""
    template = json.loads(json.dumps(synthesized.template))
    build_id, _ = synthesized.only("Custom::EnclaveImageBuild")
    template["Resources"][build_id]["Properties"]["RetirePrevious"] = "false"
    return Synthesized(template=template, outdir=synthesized.outdir)


def failed_roll(stack: Stack, host: Host) -> None:
    run, cloud = stack.run, stack.cloud
    old_pcr0 = stack.builds[-1].data["Pcr0"]
    before = (
        cloud.synthesized,
        stack.build.physical_id,
        dict(stack.build.properties),
        dict(stack.builds[-1].data),
    )
    expect_accepts(stack, keys.current_policy(cloud), {old_pcr0}, "before the failing roll")
    cloud.synthesized = without_retire(cloud.synthesized)
    run.step(
        f"change the enclave code ({SETTINGS_FILE}: KMS egress vsock 3:8000 -> 3:8001) and publish it",
        lambda: change_enclave_code(stack, wrong_egress_port, SETTINGS_FILE),
    )
    stack.projects()
    stack.status("UPDATE_IN_PROGRESS")
    replaced: list[tuple[str, dict[str, str]] | None] = []

    def update() -> Response:
        response, old = stack.build.update()
        replaced.append(old)
        return response

    response = build_step(stack, "custom resource Update: the failing code, built (a replacement)", update)
    new_pcr0, new_id, new_properties = (
        response.data["Pcr0"],
        response.physical_id,
        dict(stack.build.properties),
    )
    if replaced[0] is None or response.data.get("PreviousPcr0") != old_pcr0:
        raise RehearsalFailed("custom resource Update", f"expected a new physical id and PreviousPcr0 "
                              f"{old_pcr0}: {new_id}, {dict(response.data)}")  # fmt: skip
    policy = run.step(
        "PutKeyPolicy: the template's key policy re-rendered", lambda: keys.update_key_policy(cloud)
    )
    expect_accepts(stack, policy, {new_pcr0, old_pcr0}, "during the failing roll")
    run.step(
        "parameters from the new build's attributes", lambda: cloud.create_parameters(skip_unresolved=False)
    )
    user_data = run.step("render the new launch template version's user data", stack.user_data)
    feeder = Feeder(run, host.box, host.spec.name, out_name="cards-during-rollback.out")
    with second_namespace(stack, 3) as namespace, feeder.feeding():
        spec = host_spec(3, namespace.path, own_namespace=True)
        with booted(spec, cloud=cloud, user_data=user_data, base=stack.base, wheels=stack.wheels,
                    endpoints=stack.endpoints, run_dir=run.dir) as new_host:  # fmt: skip
            failure(stack, new_host)
            stack.status("UPDATE_ROLLBACK_IN_PROGRESS")
            run.say("rollback, in reverse order of the updates: first the group's rolling update")
        run.say(f"{spec.name} terminated; {host.spec.name} runs the old launch template version and stays")
        cloud.synthesized, old_id, old_properties, old_data = before
        stack.build.restore(old_id, old_properties, old_data)
        run.say(
            f"build resource restored to {old_id} and its recorded attributes (no request to the function)"
        )
        policy = run.step(
            "PutKeyPolicy: the old template's key policy", lambda: keys.update_key_policy(cloud)
        )
        expect_accepts(stack, policy, {old_pcr0}, "after the rollback")
        run.step(
            "parameters from the restored attributes", lambda: cloud.create_parameters(skip_unresolved=False)
        )
        stack.status("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        run.step(f"cleanup: Delete of the new build's physical id {new_id} (the stack's own function)",
                 lambda: stack.build.delete(new_id, new_properties))  # fmt: skip
        expect_accepts(stack, keys.current_policy(cloud), {old_pcr0}, "after the cleanup Delete")
        stack.status("UPDATE_ROLLBACK_COMPLETE")
    nothing_lost(stack, feeder, spec.name)
    cards.nitro_demo(run, host.box, ["send", str(SEND_COUNT)], f"{host.spec.name} after the rollback")


def failure(stack: Stack, host: Host) -> None:
    """The new host's FAILURE signal at its canary step; anything else fails the rehearsal."""
    stack.run.say(f"{host.spec.name} ({host.spec.instance_id}) booting; it must signal FAILURE at its canary")
    try:
        signal = wait_for_signal(host, stack.services.signals_record)
    except HostFailed as failed:
        raise RehearsalFailed(failed.step, failed.reason) from failed
    if signal.status != "FAILURE" or FAILED_STEP not in signal.unique_id:
        raise RehearsalFailed(
            "failing roll",
            f"{host.spec.name} signalled {signal.status}, UniqueId {signal.unique_id!r}: "
            f"expected FAILURE at its {FAILED_STEP} step",
        )
    relay = host.box.unit_state(RELAY_UNIT)
    stack.run.say(f"{host.spec.name}: FAILURE signal, UniqueId {signal.unique_id}; its relay is {relay}")
    if relay.startswith("active"):
        raise RehearsalFailed("failing roll", f"{host.spec.name}'s relay is {relay} after a failed canary")


def nothing_lost(stack: Stack, feeder: Feeder, new_host: str) -> None:
    """Every card sent while the new host failed and the stack rolled back came back ok; none parked."""
    parked, failed, codes = dead_letter_depth(stack.cloud), feeder.failed_rounds(), feeder.rejected_codes()
    stack.run.say(
        f"{len(feeder.rounds) * FEED_COUNT} cards sent in {len(feeder.rounds)} rounds while {new_host} "
        f"failed and the stack rolled back; {len(failed)} round(s) failed; dead-letter queue holds {parked}"
    )
    if parked or failed or not feeder.rounds:
        raise RehearsalFailed(
            "cards during the failed roll and its rollback",
            f"{parked} card(s) parked; rejected: "
            f"{', '.join(f'{n} {code}' for code, n in codes.most_common()) or 'none'}; {len(failed)} of "
            f"{len(feeder.rounds)} send rounds failed ({'; '.join(failed[:3])})",
        )

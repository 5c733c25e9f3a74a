"""`python -m rehearsal` (`make rehearse`): the stack's deploy and its first code update, offline: the
enclave image built by the buildspec in a CodeBuild stand-in, driven by the stack's own custom-resource
handlers; hosts booted under real systemd from the launch template's user data, gated by their canary
and SignalResource; cards, and every file the CloudWatch agent watches checked; then the roll to changed
enclave code (cards sent while the new host boots and KMS propagates the new policy) and `retire_previous`.

Exit 0 when every step passed (every card ok); 1 naming the step and the reason otherwise; 2 for usage.
Needs Linux, root, debootstrap and systemd-nspawn (see `preflight`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rehearsal import agent_files, blockers, deviations, forged, rootfs, tampered
from rehearsal.cloud import Cloud
from rehearsal.codebuild import ROLE_ACCESS_KEY, ROLE_SECRET_KEY
from rehearsal.deploy import EnclaveImageBuild
from rehearsal.hosts import booted
from rehearsal.netns import Namespace, default_name, exec_argv
from rehearsal.roll import roll
from rehearsal.rollback import failed_roll
from rehearsal.run import (
    CACHE,
    CODEBUILD_PORT,
    RehearsalFailed,
    Run,
    cached,
    host_services,
    image_inputs,
    new_run,
    prepare,
)
from rehearsal.scenario import Stack, first_cards, first_deploy, host_spec, signalled
from rehearsal.standins import base_image, image_store
from rehearsal.tampered import TAMPERED

REQUIRED_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "nsenter", "mount")
NETNS_ENV = "REHEARSAL_NETNS"  # set for the inner run: the path of the namespace it runs in


def preflight() -> str | None:
    """Why the rehearsal cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return f"it needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "it needs root (network namespaces, systemd-nspawn)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    return (
        f"missing tools: {', '.join(missing)} (apt-get install debootstrap systemd-container)"
        if missing
        else None
    )


def codebuild_base(netns: Path, base: Path, layer: Path, run: Run) -> dict[str, object]:
    """What the CodeBuild stand-in needs besides the projects: the build image, the namespace, the
    service role's key, the build container's endpoints (the emulator, the credentials URI), and what the
    docker stand-in reads instead of a registry and PyPI (bound read-only into each build container)."""
    python, wheels = image_inputs(run, base)
    digest = base_image.REFERENCE.rsplit(":", 1)[1]
    return {
        "region": "us-east-1",
        "account": "123456789012",
        "access_key_id": ROLE_ACCESS_KEY,
        "secret_access_key": ROLE_SECRET_KEY,
        "lower_dirs": [str(layer), str(base)],
        "binds": [[str(python), f"{image_store.BASES}/{digest}"], [str(wheels), image_store.WHEELHOUSE]],
        "netns": str(netns),
        "work_dir": str(run.dir / "codebuild"),
        "build_env": {
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{CODEBUILD_PORT}/credentials",
        },
    }


def rehearse(run: Run, revert: str | None, *, with_roll: bool) -> None:
    synthesized, wheels, base, layer = prepare(run)
    rootfs.prune_runs(run.dir)
    netns = Path(os.environ[NETNS_ENV])
    build_base = codebuild_base(netns, base, layer, run)
    with host_services(run, synthesized, build_base) as services:
        run.say(
            f"network namespace {netns.name}: emulator {services.http}, "
            f"SignalResource {services.signals}, CodeBuild {services.codebuild}"
        )
        cloud = Cloud(synthesized, services.http)
        with EnclaveImageBuild(cloud, services.codebuild).serving() as build:
            stack = Stack(run, services, cloud, build, base, wheels, revert)
            deploy_and_roll(stack, netns, with_roll=with_roll)


def deploy_and_roll(stack: Stack, netns: Path, *, with_roll: bool) -> None:
    run, cloud = stack.run, stack.cloud
    user_data = first_deploy(stack)
    if stack.revert == TAMPERED:
        user_data = run.step("put a tampered version of the host bundle; point the user data at it",
                             lambda: tampered.tamper(stack, user_data))  # fmt: skip
    spec = host_spec(1, netns, own_namespace=False)
    with booted(
        spec, cloud=cloud, user_data=user_data, base=stack.base, wheels=stack.wheels,
        endpoints=stack.endpoints, run_dir=run.dir,
    ) as host:  # fmt: skip
        if stack.revert == blockers.FORGED:
            forged.refused(stack, host)
            return
        if stack.revert == TAMPERED:
            tampered.refused(stack, host)
            return
        try:
            signalled(stack, host)
        except RehearsalFailed as failed:
            raise RehearsalFailed(failed.step, failed.reason + forged.note(host)) from failed
        stack.status("CREATE_COMPLETE")
        logs_before = agent_files.sizes(host.root)
        first_cards(stack, host)
        agent_files.check(run, spec.name, host.root, logs_before)
        if with_roll:
            roll(stack, host, stack.builds[0].data["Pcr0"], after=failed_roll)


def outside(argv: Sequence[str] | None) -> int:
    """Fill the caches while the network is reachable (debootstrap, pip), then re-run inside a namespace."""
    run = Run(dir=CACHE, started=time.monotonic())
    try:
        image_inputs(run, cached(run)[1])
    except RehearsalFailed as failed:
        print(f"REHEARSAL FAILED at step '{failed.step}': {failed.reason}", flush=True)
        return 1
    with Namespace(default_name()) as ns:
        inner = exec_argv(ns.name, [sys.executable, "-m", "rehearsal", *(argv or sys.argv[1:])])
        return subprocess.run(inner, env={**os.environ, NETNS_ENV: str(ns.path)}, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__)
    parser.add_argument("--revert", choices=blockers.NAMES, help="put one fixed deploy blocker back")
    parser.add_argument("--no-roll", action="store_true", help="stop after the first deploy's cards")
    parser.add_argument(
        "--forge-eif-version",
        action="store_true",
        help="boot with a forged EifVersion carrying a command substitution (the reader not reverted): "
        "passes when the host refuses it at step config and the command did not run",
    )
    parser.add_argument(
        "--tamper-bundle",
        action="store_true",
        help="boot a host whose user data names a new version of the host bundle with other bytes: passes "
        "when the host refuses it at step bundle (bundle-checksum) and nothing of it ran",
    )
    args = parser.parse_args(argv)
    if sum((bool(args.revert), args.forge_eif_version, args.tamper_bundle)) > 1:
        parser.error("--revert, --forge-eif-version and --tamper-bundle are separate runs")
    if args.forge_eif_version and args.revert:
        parser.error("--forge-eif-version is the fixed form's check; --revert host-config-sourced forges too")
    reason = preflight()
    if reason:
        print(f"rehearsal not run: {reason}")
        return 1
    if NETNS_ENV not in os.environ:
        return outside(argv)
    run = new_run()
    print("deviations from a real deploy:\n" + "\n".join(deviations.lines()), flush=True)
    try:
        if args.revert:
            print(f"reverted on purpose: {args.revert} (this run must fail, naming the tool that refused)")
        if args.forge_eif_version:
            print(f"forged on purpose: EifVersion v1$(touch {blockers.FORGED_MARKER}) in demo.env")
        if args.tamper_bundle:
            print("tampered on purpose: a new host bundle version, other bytes, named by the user data")
        scenario = (
            blockers.FORGED if args.forge_eif_version else TAMPERED if args.tamper_bundle else args.revert
        )
        rehearse(run, scenario, with_roll=not args.no_roll)
    except RehearsalFailed as failed:
        print(f"REHEARSAL FAILED at step '{failed.step}': {failed.reason}", flush=True)
        print(f"run directory left in place: {run.dir} (each host's and build's overlay upper dir, logs)")
        return 1
    print(f"REHEARSAL PASSED; run directory left in place: {run.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

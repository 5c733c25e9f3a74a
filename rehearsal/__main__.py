"""`python -m rehearsal` (`make rehearse`): the parent instance's first boot under real systemd.

Exit 0 when the boot signals SUCCESS and 20 + 200 cards come back ok; 1 naming the step and the reason
otherwise; 2 for usage. Needs Linux, root, debootstrap and systemd-nspawn (see `preflight`).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rehearsal import blockers, deviations, figures, rootfs
from rehearsal.cloud import Cloud
from rehearsal.container import Container
from rehearsal.figures import Figures
from rehearsal.netns import Namespace, default_name, exec_argv
from rehearsal.run import (
    CACHE,
    HANDLE_PORT,
    RehearsalFailed,
    Run,
    cached,
    host_services,
    new_run,
    prepare,
    start_imds,
    wait_for_signal,
)
from rehearsal.standins import StandinSettings, install_standins, nspawn_arguments
from rehearsal.template import Synthesized
from rehearsal.wait_handle import wait_condition_data
from rehearsal.wheelhouse import CONTAINER_WHEELHOUSE

REQUIRED_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "nsenter")
SEND_COUNT, LOAD_COUNT = 20, 200
SOFTWARE_ROOT_NOTE = (
    "attest: PCR0 equals the key policy's pin; the chain ends at the local PKI's root, not the AWS Nitro "
    "root (a deviation: the software NSM)"
)
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


def boot(run: Run, revert: str | None) -> None:
    synthesized, wheels, root = prepare(run)
    netns = Path(os.environ[NETNS_ENV])
    with host_services(run) as emulator:
        run.say(f"network namespace {netns.name}: emulator {emulator.http}, IMDS, wait handle :{HANDLE_PORT}")
        cloud = Cloud(synthesized, emulator.http, signal_url=f"http://127.0.0.1:{HANDLE_PORT}/signal")
        run.step(
            "create the stack's resources in the emulator",
            lambda: cloud.before_boot(run.dir, blockers.asset_patch(revert)),
        )
        user_data = run.step("render the user data (Fn::Sub)", lambda: render(synthesized, cloud, revert))
        settings = StandinSettings(
            region=cloud.region, emulator_https_url=emulator.https, enclave_kms_endpoint_url=emulator.https
        )
        run.step("install the stand-ins", lambda: install_standins(root, settings=settings))
        run.step("configure the root filesystem", lambda: configure(root, user_data, emulator.http))
        with start_imds(run, cloud):
            box = Container(
                root,
                machine=netns.name,
                netns=netns,
                binds_ro=[(wheels, CONTAINER_WHEELHOUSE)],
                console=run.dir / "console.log",
                extra_args=nspawn_arguments(settings, pki_host_dir=run.dir / "pki"),
            )
            run.step("boot the container (systemd-nspawn --boot)", box.start)
            try:
                first_boot(run, box, cloud)
            finally:
                box.stop()


def render(synthesized: Synthesized, cloud: Cloud, revert: str | None) -> str:
    return blockers.revert_user_data(revert, synthesized.render_user_data(cloud.resolver()))


def configure(root: Path, user_data: str, endpoint: str) -> None:
    rootfs.configure(root, user_data=user_data, default_environment={"AWS_ENDPOINT_URL": endpoint})


def first_boot(run: Run, box: Container, cloud: Cloud) -> None:
    run.say(f"container init is pid {box.leader}; waiting for the wait condition's signal")
    signals = wait_for_signal(run, box, run.dir / "signals.jsonl")
    first = next(s for s in signals if s.status in ("SUCCESS", "FAILURE"))
    if first.status == "FAILURE":
        raise RehearsalFailed("boot signal", f"FAILURE: {first.reason}\n{failed_units(box)}")
    run.say(f"SUCCESS signal: {first.reason}")
    after_success(run, box, cloud, wait_condition_data(signals))


def failed_units(box: Container) -> str:
    parts = []
    for unit in box.failed_units():
        parts.append(f"failed unit {unit}, journal tail:\n{box.journal(unit, 15)}")
    return "\n".join(parts)


def after_success(run: Run, box: Container, cloud: Cloud, data: str) -> None:
    pcr0 = run.step(
        "take PCR0 out of WaitCondition.Data with the template's Fn::Select/Fn::Split",
        lambda: cloud.after_signal(data),
    )
    run.say(f"pinned PCR0 {pcr0}")
    key_arn = run.step("create the key with the template's key policy", cloud.create_key)
    run.say(f"key {key_arn}")
    for argv in (["send", str(SEND_COUNT)], ["status"], ["attest"], ["send", str(LOAD_COUNT)]):
        nitro_demo(run, box, argv)
    found = run.step("figures of the load (relay and vsock-proxy journals)", lambda: load_figures(box))
    run.say(found.summary())
    if found.problems():
        raise RehearsalFailed(f"nitro-demo send {LOAD_COUNT}", "; ".join(found.problems()))


def nitro_demo(run: Run, box: Container, argv: list[str]) -> None:
    """`nitro-demo ARGV` on the host, as a unit; per-card lines go to the run directory, the rest is shown."""
    name = f"nitro-demo {' '.join(argv)}"
    done = run.step(name, functools.partial(box.run_unit, ["/usr/local/bin/nitro-demo", *argv]))
    (run.dir / f"{name.replace(' ', '-')}.out").write_text(done.stdout + done.stderr, encoding="utf-8")
    print("".join(line for line in done.stdout.splitlines(True) if "card_id=" not in line), end="")
    if argv == ["attest"] and attested_but_software_root(done.stdout):
        run.say(SOFTWARE_ROOT_NOTE)
        return
    if done.returncode != 0:
        reason = f"exit {done.returncode}: {done.stderr.strip()[-1500:]}"
        if argv[0] == "send":  # say why cards went missing: the relay's and vsock-proxy's journals
            found = load_figures(box)
            reason += "\n" + found.summary() + "".join(f"\n{p}" for p in found.problems())
        raise RehearsalFailed(name, reason)


def load_figures(box: Container) -> Figures:
    relay = box.journal(figures.RELAY_UNIT, "all")
    return figures.from_journals(relay, box.journal(figures.PROXY_UNIT, "all"))


def attested_but_software_root(report: str) -> bool:
    """`nitro-demo attest` trusts only the AWS Nitro root; the software NSM's chain ends at the local root."""
    rows = [line.split() for line in report.splitlines() if line.startswith("PCR0 ")]
    pcr0_matches = len(rows) == 1 and len(rows[0]) == 3 and rows[0][1] == rows[0][2]
    return pcr0_matches and "NOT VERIFIED: UntrustedChain: cabundle root" in report


def outside(argv: Sequence[str] | None) -> int:
    """Fill the caches while the network is reachable (debootstrap, pip), then re-run inside a namespace."""
    run = Run(dir=CACHE, started=time.monotonic())
    try:
        cached(run)
    except RehearsalFailed as failed:
        print(f"REHEARSAL FAILED at step '{failed.step}': {failed.reason}", flush=True)
        return 1
    with Namespace(default_name()) as ns:
        inner = exec_argv(ns.name, [sys.executable, "-m", "rehearsal", *(argv or sys.argv[1:])])
        return subprocess.run(inner, env={**os.environ, NETNS_ENV: str(ns.path)}, check=False).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__)
    parser.add_argument("--revert", choices=blockers.NAMES, help="put one fixed deploy blocker back")
    args = parser.parse_args(argv)
    reason = preflight()
    if reason:
        print(f"rehearsal not run: {reason}")
        return 1
    if NETNS_ENV not in os.environ:
        return outside(argv)
    run = new_run()
    print("deviations from a real instance:\n" + "\n".join(deviations.lines()), flush=True)
    try:
        if args.revert:
            print(f"reverted on purpose: {args.revert} (this run must fail, naming the tool that refused)")
        boot(run, args.revert)
    except RehearsalFailed as failed:
        print(f"REHEARSAL FAILED at step '{failed.step}': {failed.reason}", flush=True)
        print(f"root filesystem left in place: {run.dir / 'root'}")
        return 1
    print(f"REHEARSAL PASSED; root filesystem left in place: {run.dir / 'root'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A forged build value on the host: what `--forge-eif-version` (the fixed reader) and `--revert
host-config-sourced` (the old sourcing) must show. The forged EifVersion's command, were it run, leaves
blockers.FORGED_MARKER in the host's root."""

from __future__ import annotations

from rehearsal.blockers import FORGED_MARKER
from rehearsal.hosts import Host, HostFailed, wait_for_signal
from rehearsal.run import RehearsalFailed
from rehearsal.scenario import Stack

STEP = "forged EifVersion"


def ran(host: Host) -> bool:
    return (host.root / FORGED_MARKER.lstrip("/")).exists()


def note(host: Host) -> str:
    """For a failure report: whether a command substituted from demo.env ran on the host."""
    if not ran(host):
        return ""
    return f"\nthe forged EifVersion's command ran as root on {host.spec.name}: {FORGED_MARKER} exists"


def refused(stack: Stack, host: Host) -> None:
    """The host must signal FAILURE at step config naming EIF_VERSION, and the command must not have run."""
    try:
        signal = wait_for_signal(host, stack.services.signals_record)
    except HostFailed as failed:
        raise RehearsalFailed(failed.step, failed.reason + note(host)) from failed
    if ran(host):
        raise RehearsalFailed(STEP, note(host).strip())
    expected = f"{host.spec.instance_id} config: EIF_VERSION"
    if (signal.status, signal.unique_id) != ("FAILURE", expected):
        raise RehearsalFailed(
            STEP,
            f"expected FAILURE {expected!r}, {host.spec.name} signalled {signal.status} {signal.unique_id!r}",
        )
    stack.run.say(
        f"{host.spec.name} refused the forged EifVersion: FAILURE, UniqueId {signal.unique_id!r}; "
        f"{FORGED_MARKER} does not exist: the command substitution never ran"
    )

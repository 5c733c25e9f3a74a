"""Cards through a rehearsed host: `nitro-demo` as the SSM agent would run it (a transient unit, as root,
with the manager's environment), its per-card lines kept in the run directory, and the load's figures from
the relay's and vsock-proxy's journals."""

from __future__ import annotations

import functools

from rehearsal import figures
from rehearsal.container import Container
from rehearsal.figures import Figures
from rehearsal.run import RehearsalFailed, Run

SOFTWARE_ROOT_NOTE = (
    "attest: PCR0 equals the key policy's pin; the chain ends at the local PKI's root, not the AWS Nitro "
    "root (a deviation: the software NSM)"
)


def nitro_demo(run: Run, box: Container, argv: list[str], host: str = "") -> None:
    """`nitro-demo ARGV` on the host, as a unit; per-card lines go to the run directory, the rest is shown."""
    name = f"nitro-demo {' '.join(argv)}" + (f" on {host}" if host else "")
    done = run.step(name, functools.partial(box.run_unit, ["/usr/local/bin/nitro-demo", *argv]))
    out = run.dir / f"{name.replace(' ', '-')}.out"
    out.write_text(done.stdout + done.stderr, encoding="utf-8")
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


def check_load(run: Run, boxes: dict[str, Container], step: str) -> dict[str, Figures]:
    """Each host's relay figures, printed; RehearsalFailed naming the host if any card was not ok."""
    found = run.step(
        "figures of the load (relay and vsock-proxy journals)",
        lambda: {h: load_figures(b) for h, b in boxes.items()},
    )
    for host, figure in found.items():
        run.say(f"{host}: {figure.summary()}")
    problems = [f"{host}: {p}" for host, figure in found.items() for p in figure.problems()]
    if problems:
        raise RehearsalFailed(step, "; ".join(problems))
    return found


def attested_but_software_root(report: str) -> bool:
    """`nitro-demo attest` trusts only the AWS Nitro root; the software NSM's chain ends at the local root."""
    rows = [line.split() for line in report.splitlines() if line.startswith("PCR0 ")]
    pcr0_matches = len(rows) == 1 and len(rows[0]) == 3 and rows[0][1] == rows[0][2]
    return pcr0_matches and "NOT VERIFIED: UntrustedChain: cabundle root" in report

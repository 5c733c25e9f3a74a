"""`python -m app.ops doctor|status`: say in words what is wrong on the parent instance, and how each
part is doing. Exit codes: 0 nothing failed, 1 something failed, 2 usage. With --report-only the findings
are the output and the exit code says only whether the tool ran (0; a crash is still 1): an SSM document's
status then means "could not check", not "found something".
"""

from __future__ import annotations

import argparse
import os
import sys

from app.ops import collect, doctor, status
from app.ops.findings import exit_code, render_json, render_text
from app.producer.progress import steps
from app.shared import logs, settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.ops", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--report-only", action="store_true", help="exit 0 even when a check failed (the findings say so)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check the known failure modes and say what to do")
    state = commands.add_parser("status", help="health of every part: services, enclave, queues, errors")
    state.add_argument(
        "--enclave-url", default=settings.env(settings.ENV_ENCLAVE_URL, settings.DEFAULT_ENCLAVE_URL)
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(settings.env(settings.ENV_LOG_LEVEL, "WARNING") or "WARNING")
    if args.command == "doctor":
        findings = doctor.diagnose(collect.collect(os.environ))
    else:
        with steps(status.GATHER_STEPS) as doing:  # which check runs, on a terminal only
            findings = status.gather(os.environ, args.enclave_url, doing)
    print(render_json(findings) if args.json else render_text(findings))
    return 0 if args.report_only else exit_code(findings)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Stand-in for Amazon Linux 2023's /usr/bin/dnf: `dnf install [-y] [-q] NAMES...` and nothing else.

Contract (dnf 4, as on AL2023: docs.fedoraproject / dnf.readthedocs.io "install" and its messages): a name
that matches no package prints `No match for argument: NAME` and `Error: Unable to find a match: NAMES`, and
the transaction installs nothing, exit 1. Without `-y` and no terminal to answer the prompt, dnf aborts
(`Operation aborted.`, exit 1). `-q` prints nothing on success. The names known here are exactly the AL2023
packages the bootstrap installs (packages.PACKAGES); installing one puts its stand-in files in place.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import host
from rehearsal.standins.packages import PACKAGES, UNIT_DIR, Package

INSTALLED = "/var/lib/rehearsal-dnf/installed.json"
SYSTEM_GID_MAX = 999
UNITS_SOURCE = Path(__file__).resolve().parent / "units"


def parse(argv: list[str]) -> argparse.Namespace:
    """dnf's options may come before or after the command and the package names."""
    options = {"-y": "assumeyes", "--assumeyes": "assumeyes", "-q": "quiet", "--quiet": "quiet"}
    unknown = [a for a in argv if a.startswith("-") and a not in options]
    if unknown:
        host.fail(f"rehearsal stand-in dnf: options {' '.join(unknown)} are not supported here", 2)
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        host.fail("rehearsal stand-in dnf: no command given", 2)
    flags = {name: any(options.get(a) == name for a in argv) for name in ("assumeyes", "quiet")}
    return argparse.Namespace(command=words[0], names=words[1:], **flags)


def add_group(name: str) -> None:
    """`groupadd -f NAME` (the package's %pre) as a system group, written into the root's files."""
    group_file = host.path("/etc/group")
    lines = group_file.read_text(encoding="utf-8").splitlines() if group_file.exists() else []
    if any(line.split(":", 1)[0] == name for line in lines):
        return
    used = {int(fields[2]) for fields in (line.split(":") for line in lines) if len(fields) > 2}
    gid = next(g for g in range(SYSTEM_GID_MAX, 0, -1) if g not in used)
    group_file.parent.mkdir(parents=True, exist_ok=True)
    with group_file.open("a", encoding="utf-8") as handle:
        handle.write(f"{name}:x:{gid}:\n")
    gshadow = host.path("/etc/gshadow")
    if gshadow.exists():
        with gshadow.open("a", encoding="utf-8") as handle:
            handle.write(f"{name}:!::\n")


def install(package: Package) -> None:
    missing = [p for p in package.provided_by_root if not host.path(p).exists()]
    if missing:
        host.fail(
            f"rehearsal stand-in dnf: {package.name} must come with the rehearsal's root: no {missing[0]}"
        )
    library = Path(__file__).resolve().parent
    for target, module in package.links.items():
        link = host.path(target)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(library / module)
        os.chmod(library / module, 0o755)  # noqa: S103 - a program, like the package's /usr/bin files
    for unit in package.units:
        destination = host.path(f"{UNIT_DIR}/{unit}")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes((UNITS_SOURCE / unit).read_bytes())
    for target, content in package.files.items():
        destination = host.path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.exists():  # %config(noreplace)
            destination.write_text(content, encoding="utf-8")
    for directory in package.dirs:
        host.path(directory).mkdir(parents=True, exist_ok=True)
    for group in package.groups:
        add_group(group)


def package_of(spec: str) -> str | None:
    """The package a `dnf install` argument names: NAME, or NAME-VERSION for the one version each package
    has here (dnf's NAME-VERSION form; docs "Specifying Packages"); None when nothing matches."""
    if spec in PACKAGES:
        return spec
    name, _, version = spec.rpartition("-")
    package = PACKAGES.get(name)
    return name if package is not None and package.version and version == package.version else None


def with_requirements(names: list[str]) -> list[str]:
    """The names asked for and what their packages require, each once (dnf resolves `Requires:`)."""
    ordered: list[str] = []
    for name in names:
        for needed in (*PACKAGES[name].requires, name):
            if needed not in ordered:
                ordered.append(needed)
    return ordered


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.command != "install":
        host.fail(f"rehearsal stand-in dnf: only `dnf install` is supported, not `dnf {args.command}`", 2)
    matched = {spec: package_of(spec) for spec in args.names}
    unknown = [spec for spec, name in matched.items() if name is None]
    if unknown:
        for spec in unknown:
            print(f"No match for argument: {spec}", file=sys.stderr)
        host.fail(f"Error: Unable to find a match: {' '.join(unknown)}")
    if not args.assumeyes and not sys.stdin.isatty():
        print("Is this ok [y/N]: ", end="")
        host.fail("Operation aborted.")
    transaction = with_requirements([name for name in matched.values() if name is not None])
    for name in transaction:
        install(PACKAGES[name])
    record = host.path(INSTALLED)
    done = set(json.loads(record.read_text())) if record.exists() else set()
    host.write_json(record, sorted(done | set(transaction)))
    if not args.quiet:
        print("Installed:\n" + "".join(f"  {name}\n" for name in transaction) + "\nComplete!")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

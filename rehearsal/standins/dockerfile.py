"""The part of the Dockerfile format the docker stand-in builds: FROM, ARG, ENV, WORKDIR, COPY, RUN, CMD.

Rules from the Dockerfile reference (docs.docker.com/reference/dockerfile: line continuation, `#` comments,
`ENV k=v ...`, `COPY src... dest` relative to the context and, for a relative dest, to WORKDIR; a directory
source copies its contents; `ARG name[=default]` declares a build argument in the stage it follows, whose
value a `--build-arg` overrides, which RUN sees and which is not kept in the image's config; a build arg no
ARG declares is not consumed, and only warned about) and .dockerignore (`**` any number of directories, else
Go filepath.Match; an excluded directory excludes what is inside it). The steps that change the image's
files (WORKDIR, COPY, RUN) are kept in order; each RUN keeps the ENV and ARG values declared before it (the
reference: "The environment variables set using ENV will persist when a container is run from the
resulting image" and are seen by every later RUN; an ARG is seen by the RUN lines after it; "Environment
variables defined using the ENV instruction always override an ARG instruction of the same name").
Variable substitution (`$name`) is left to RUN's shell; anywhere else, as for an ARG before FROM (global
scope) or any other instruction, it is refused by name, never guessed at.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath


class DockerfileError(Exception):
    """A Dockerfile or .dockerignore this stand-in cannot build faithfully."""


@dataclass(frozen=True)
class Run:
    """One RUN in shell form: its text, and the ENV entries and ARG values in force at that line."""

    text: str
    env: tuple[str, ...]
    args: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str  # absolute


@dataclass(frozen=True)
class Workdir:
    path: str  # absolute


Step = Run | Copy | Workdir


@dataclass
class Recipe:
    base: str = ""
    env: list[str] = field(default_factory=list)
    args: dict[str, str | None] = field(default_factory=dict)  # declared ARGs: the value RUN sees, or unset
    workdir: str = "/"
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, absolute destination)
    runs: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)  # in the Dockerfile's order


def _instructions(text: str) -> list[tuple[str, str]]:
    joined, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    return [(ins.split(None, 1)[0].upper(), [*ins.split(None, 1), ""][1].strip()) for ins in joined]


def _declare(recipe: Recipe, rest: str, build_args: dict[str, str]) -> None:
    if not recipe.base:
        raise DockerfileError(f"ARG {rest} before FROM (global scope) is not supported by the stand-in")
    name, has_default, default = rest.partition("=")
    if not name or len(rest.split()) != 1:
        raise DockerfileError(f"ARG {rest}: the stand-in declares one `ARG name[=default]` per line")
    recipe.args[name] = build_args.get(name, default if has_default else None)


def _copy(recipe: Recipe, rest: str) -> None:
    words = shlex.split(rest)
    if len(words) < 2 or any(w.startswith("--") for w in words):
        raise DockerfileError(f"COPY {rest}: the stand-in copies `COPY src... dest` only, no flags")
    dest = words[-1] if words[-1].startswith("/") else f"{recipe.workdir.rstrip('/')}/{words[-1]}"
    recipe.copies.append((words[:-1], dest))
    recipe.steps.append(Copy(tuple(words[:-1]), dest))


def _run(recipe: Recipe, rest: str) -> None:
    if rest.startswith("["):
        raise DockerfileError(f"RUN {rest}: the stand-in runs the shell form only")
    recipe.runs.append(rest)
    recipe.steps.append(Run(rest, tuple(recipe.env), tuple(recipe.args.items())))


def parse(text: str, build_args: dict[str, str] | None = None) -> Recipe:
    recipe = Recipe()
    for keyword, rest in _instructions(text):
        if "$" in rest and keyword != "RUN":
            raise DockerfileError(f"{keyword} {rest}: variable substitution is not supported by the stand-in")
        if keyword == "ARG":
            _declare(recipe, rest, build_args or {})
        elif keyword == "FROM":
            recipe.base = rest
        elif keyword == "ENV":
            recipe.env += [item for item in shlex.split(rest) if "=" in item] or [
                "=".join(rest.split(None, 1))  # the legacy `ENV key value` form
            ]
        elif keyword == "WORKDIR":
            recipe.workdir = str(PurePosixPath(recipe.workdir) / rest)
            recipe.steps.append(Workdir(recipe.workdir))
        elif keyword == "COPY":
            _copy(recipe, rest)
        elif keyword == "RUN":
            _run(recipe, rest)
        elif keyword == "CMD":
            recipe.cmd = json.loads(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
        else:
            raise DockerfileError(f"{keyword} is not supported by the rehearsal's docker stand-in")
    if not recipe.base:
        raise DockerfileError("no FROM instruction")
    return recipe


def _matches(parts: list[str], pattern: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def ignore_rules(context: Path) -> list[list[str]]:
    ignore_file = context / ".dockerignore"
    if not ignore_file.exists():
        return []
    rules = []
    for raw in ignore_file.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!"):
            raise DockerfileError(f".dockerignore exception {line!r} is not supported by the stand-in")
        rules.append([p for p in PurePosixPath(line.strip("/")).parts if p != "."])
    return rules


def ignored(relative: PurePosixPath, rules: list[list[str]]) -> bool:
    parts = list(relative.parts)
    return any(_matches(parts[:n], rule) for rule in rules for n in range(1, len(parts) + 1))

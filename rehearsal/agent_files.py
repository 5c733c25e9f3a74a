"""Every file the CloudWatch agent is told to watch on a rehearsed host exists and grows.

The list is read from the host's root, from the configuration the agent stand-in kept at `fetch-config` (what
the real agent would run with), not from the repository: a path the journal exports never write fails here,
naming the file. No agent ships anything (a deviation); the files themselves are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from rehearsal.run import RehearsalFailed, Run
from rehearsal.standins.cloudwatch_agent_ctl import CONFIG_DIR

# Watched, but nothing in the rehearsal writes it: the nitro-cli stand-in keeps no log file of its own.
NOT_WRITTEN_HERE = frozenset({"/var/log/nitro_enclaves/nitro_enclaves.log"})
# The relay logs a line per card, so its file must grow while cards go through. The enclave's log channel
# ships no per-card line (only start-up, key pairs, warnings and errors), so on a quiet host its file may
# not grow during a few hundred cards: it is checked to exist and not be empty, as every other file.
GROWS_WITH_CARDS = ("relay",)


def watched(root: Path) -> dict[str, str]:
    """stream -> file_path of every collect_list entry in the configurations the agent fetched."""
    found: dict[str, str] = {}
    for config in sorted((root / CONFIG_DIR.lstrip("/")).glob("*.json")):
        loaded = json.loads(config.read_text(encoding="utf-8"))
        for entry in loaded["logs"]["logs_collected"]["files"]["collect_list"]:
            found[str(entry["log_stream_name"]).removeprefix("{instance_id}/")] = str(entry["file_path"])
    return found


def sizes(root: Path) -> dict[str, int | None]:
    """file_path -> its size on the host now (None: it does not exist)."""
    result: dict[str, int | None] = {}
    for path in watched(root).values():
        file = root / path.lstrip("/")
        result[path] = file.stat().st_size if file.is_file() else None
    return result


def check(run: Run, host: str, root: Path, before: dict[str, int | None]) -> None:
    """Each watched file exists and is not empty, and the relay's grew since `before`."""
    streams, now = watched(root), sizes(root)
    if not streams:
        raise RehearsalFailed(f"CloudWatch agent's files on {host}", "the agent fetched no file to watch")
    problems, missing_in = [], set()
    for stream, path in streams.items():
        size = now[path]
        if size is None:
            problems.append(f"{stream}: the agent watches {path}, which does not exist")
            missing_in.add(Path(path).parent)
        elif size == 0 and path not in NOT_WRITTEN_HERE:
            problems.append(f"{stream}: {path} is empty")
        elif stream in GROWS_WITH_CARDS and size <= (before.get(path) or 0):
            problems.append(f"{stream}: {path} did not grow while cards were processed")
    for directory in sorted(missing_in):
        found = sorted(p.name for p in (root / str(directory).lstrip("/")).glob("*"))
        problems.append(f"what {directory} holds: {', '.join(found) or 'nothing'}")
    if problems:
        raise RehearsalFailed(f"CloudWatch agent's files on {host}", "; ".join(problems))
    listed = ", ".join(f"{s} {now[p]} B" for s, p in streams.items())
    run.say(f"{host}: every file the CloudWatch agent watches exists and grows ({listed})")

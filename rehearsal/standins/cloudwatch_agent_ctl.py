#!/usr/bin/python3
"""Stand-in for amazon-cloudwatch-agent-ctl: `-a fetch-config -m ec2 -s -c file:PATH` validates and keeps the
config.

Contract
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/install-CloudWatch-Agent-commandline-fleet.html and
the agent's config-file reference): `-a fetch-config` reads the JSON config from `-c file:PATH`, `-m` is ec2,
onPremise or auto, `-s` restarts the agent with it; the config must be a JSON object whose
`logs.logs_collected.files.collect_list` entries each name a `file_path`. The config is kept under CONFIG_DIR,
as the agent keeps what it fetched; rehearsal/agent_files.py reads it there to check that every watched file
exists and grows. It does not run an agent or ship logs: the rehearsal has no CloudWatch Logs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import host

CONFIG_DIR = "/opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d"
MODES = ("ec2", "onPremise", "auto")


def validate(config: object) -> list[str]:
    if not isinstance(config, dict):
        return ["the configuration is not a JSON object"]
    problems = [
        f"unknown section {key!r}" for key in config if key not in ("agent", "metrics", "logs", "traces")
    ]
    collected = config.get("logs", {}).get("logs_collected", {}).get("files", {}).get("collect_list", [])
    if not isinstance(collected, list):
        return [*problems, "logs.logs_collected.files.collect_list is not a list"]
    for index, entry in enumerate(collected):
        if not isinstance(entry, dict) or not isinstance(entry.get("file_path"), str):
            problems.append(f"collect_list[{index}] has no file_path")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="amazon-cloudwatch-agent-ctl")
    parser.add_argument("-a", dest="action", required=True)
    parser.add_argument("-m", dest="mode", default="ec2")
    parser.add_argument("-c", dest="config", default="")
    parser.add_argument("-s", dest="start", action="store_true")
    args = parser.parse_args(argv)
    if args.action != "fetch-config":
        host.fail(f"rehearsal stand-in amazon-cloudwatch-agent-ctl: -a {args.action} is not supported here")
    if args.mode not in MODES:
        host.fail(f"Invalid mode {args.mode}: use one of {', '.join(MODES)}")
    if not args.config.startswith("file:"):
        host.fail(f"rehearsal stand-in amazon-cloudwatch-agent-ctl: only -c file:PATH, not {args.config!r}")
    source = host.path(args.config.removeprefix("file:"))
    try:
        config = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        host.fail(f"E! Invalid JSON in {source}: {error}")
    problems = validate(config)
    if problems:
        host.fail(f"E! Invalid configuration {source}: {'; '.join(problems)}")
    host.write_json(host.path(f"{CONFIG_DIR}/file_{source.name}"), config)
    print(f"Successfully fetched the config and saved in {CONFIG_DIR}/file_{source.name}")
    if args.start:
        print("rehearsal stand-in: no agent is started and no log is shipped (there is no CloudWatch here)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What a host ships to CloudWatch Logs: which units' journals are exported, the file each becomes, and the
log stream each file feeds. The one list: the CloudWatch agent's configuration is rendered from it, and the
journal template unit, bootstrap.sh's JOURNAL_EXPORTS, the metric filters' streams, the dashboard and
docs/operations.md are tested against it (tests/infra/test_host_logs.py). Pure data, no CDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

LOG_DIR = "/var/log/nitro-enclave-demo"
JOURNAL_TEMPLATE = "nitro-enclave-demo-journal@.service"
# The agent's own settings (run as root to read the journal copies; its log where the RPM puts it).
AGENT_LOG = "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log"
FORCE_FLUSH_INTERVAL_S = 5
LOG_GROUP_PLACEHOLDER = "${LogGroupName}"  # filled in by CloudFormation (Fn::Sub) in the user data


@dataclass(frozen=True)
class LogFile:
    """A file the agent watches and the stream (`<instance-id>/<stream>`) it feeds."""

    path: str
    stream: str
    what: str


@dataclass(frozen=True)
class JournalExport:
    """A unit whose journal the template unit copies to a file (the agent packaged for AL2023 reads files)."""

    unit: str  # the unit's name without ".service", the template's instance
    stream: str
    what: str

    @property
    def export_unit(self) -> str:
        return JOURNAL_TEMPLATE.replace("@.", f"@{self.unit}.")

    @property
    def file(self) -> LogFile:
        # systemd.unit(5): in "name@instance.service" the specifier %i is "instance", the text between the
        # first "@" and the type suffix; the template unit writes StandardOutput=append:LOG_DIR/%i.log.
        return LogFile(f"{LOG_DIR}/{self.unit}.log", self.stream, self.what)


JOURNAL_EXPORTS: tuple[JournalExport, ...] = (
    JournalExport("nitro-enclave-demo-relay", "relay", "the relay's JSON lines"),
    JournalExport("nitro-enclave-demo-logs", "enclave", "the enclave's own lines and counters (log sink)"),
    JournalExport("nitro-enclave-demo-enclave", "enclave-unit", "nitro-cli run-enclave output, E-codes"),
    JournalExport("nitro-enclaves-vsock-proxy", "vsock-proxy", "the Nitro CLI's vsock-proxy"),
    JournalExport("nitro-enclaves-allocator", "allocator", "the Nitro CLI's allocator"),
)
OTHER_FILES: tuple[LogFile, ...] = (
    LogFile("/var/log/cloud-init-output.log", "bootstrap", "the bootstrap's steps and the doctor's report"),
    LogFile("/var/log/nitro_enclaves/nitro_enclaves.log", "nitro-cli", "nitro-cli's own log"),
)


def shipped() -> tuple[LogFile, ...]:
    """Every file the agent watches, in the configuration's order."""
    return (OTHER_FILES[0], *(export.file for export in JOURNAL_EXPORTS), *OTHER_FILES[1:])


def agent_config(log_group_name: str = LOG_GROUP_PLACEHOLDER) -> dict[str, Any]:
    """The CloudWatch agent's configuration (its `logs.logs_collected.files.collect_list` schema)."""
    collect = [
        {
            "file_path": f.path,
            "log_group_name": log_group_name,
            "log_stream_name": f"{{instance_id}}/{f.stream}",
        }
        for f in shipped()
    ]
    return {
        "agent": {"run_as_user": "root", "logfile": AGENT_LOG},
        "logs": {
            "force_flush_interval": FORCE_FLUSH_INTERVAL_S,
            "logs_collected": {"files": {"collect_list": collect}},
        },
    }


def agent_config_json() -> str:
    """The configuration as the user data writes it, `${LogGroupName}` left for Fn::Sub."""
    return json.dumps(agent_config(), indent=2)

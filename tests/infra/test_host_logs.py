"""The one list of what a host ships (infra/constructs/host_logs.py) against everything that depends on it:
the agent's configuration the user data writes, the journal template unit and the instances bootstrap.sh
enables, the metric filters' streams, the dashboard and docs/operations.md."""

from __future__ import annotations

import json
import re

from infra.constants import HOST_FILES_DIR, REPO_ROOT
from infra.constructs import host_logs
from infra.constructs.observability import LOG_METRICS
from tests.infra.cfn import Json, only
from tests.infra.test_host_files import user_data_parts

BOOTSTRAP = (HOST_FILES_DIR / "bootstrap.sh").read_text()


def watched(template: Json) -> dict[str, str]:
    """stream -> file_path, from the agent configuration the user data writes."""
    config = json.loads(user_data_parts(template)["CloudWatchAgentJson"])
    entries = config["logs"]["logs_collected"]["files"]["collect_list"]
    return {e["log_stream_name"].removeprefix("{instance_id}/"): e["file_path"] for e in entries}


def instance(unit_name: str) -> str:
    """systemd.unit(5): %i of "prefix@instance.type" is the text between the first "@" and the suffix."""
    return unit_name.split("@", 1)[1].rsplit(".", 1)[0]


def bootstrap_exports() -> list[str]:
    (exports,) = re.findall(r"JOURNAL_EXPORTS=\(([^)]*)\)", BOOTSTRAP)
    return str(exports).split()


def written_by_journal_exports() -> set[str]:
    """The files the template unit writes for the instances bootstrap.sh enables, %i resolved as systemd
    resolves it in StandardOutput=."""
    (enable,) = re.findall(
        r'systemctl enable --now "(nitro-enclave-demo-journal@\$unit\.service)"', BOOTSTRAP
    )
    unit_text = (HOST_FILES_DIR / host_logs.JOURNAL_TEMPLATE).read_text()
    (output,) = re.findall(r"^StandardOutput=append:(\S+)$", unit_text, flags=re.MULTILINE)
    return {output.replace("%i", instance(enable.replace("$unit", name))) for name in bootstrap_exports()}


def test_every_journal_file_the_agent_watches_is_one_the_template_unit_writes(template: Json) -> None:
    in_log_dir = {p for p in watched(template).values() if p.startswith(host_logs.LOG_DIR + "/")}
    assert in_log_dir == written_by_journal_exports()


def test_the_agent_ships_exactly_the_listed_files_to_the_stack_log_group(template: Json) -> None:
    assert watched(template) == {f.stream: f.path for f in host_logs.shipped()}
    config = json.loads(user_data_parts(template)["CloudWatchAgentJson"])
    groups = {e["log_group_name"] for e in config["logs"]["logs_collected"]["files"]["collect_list"]}
    (log_group,) = groups
    assert log_group.startswith("ref-ObservabilityLogGroup")


def test_bootstrap_exports_the_listed_units() -> None:
    assert bootstrap_exports() == [export.unit for export in host_logs.JOURNAL_EXPORTS]


def test_export_files_follow_the_instance_specifier() -> None:
    for export in host_logs.JOURNAL_EXPORTS:
        assert instance(export.export_unit) == export.unit
        assert export.file.path == f"{host_logs.LOG_DIR}/{export.unit}.log"


def test_every_metric_reads_a_stream_the_agent_ships() -> None:
    streams = {f.stream for f in host_logs.shipped()}
    assert {metric.stream for metric in LOG_METRICS} <= streams


def test_the_dashboards_log_table_names_every_shipped_stream(template: Json) -> None:
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    streams = ", ".join(f.stream for f in host_logs.shipped())
    assert f"Recent warnings and errors ({streams})" in body


def test_the_operations_guide_lists_each_stream_with_its_file() -> None:
    guide = (REPO_ROOT / "docs/operations.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| `(/var/log/[^`]+)` \|", guide, flags=re.MULTILINE))
    assert rows == {f.stream: f.path for f in host_logs.shipped()}

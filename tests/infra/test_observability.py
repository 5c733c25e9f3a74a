"""Logs, metrics, dashboard, alarm, SSM run documents and their outputs; the agent config and `nitro-demo`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from aws_cdk import assertions

from infra.constants import HOST_FILES_DIR, METRIC_NAMESPACE, NITRO_DEMO, REPO_ROOT
from infra.constructs.observability import BOOT_FAILED_UNSIGNALLED, BOOT_FAILURES_METRIC
from tests.infra.cfn import Json, evaluate, only, resources, statements
from tests.infra.conftest import Synth, SynthFn
from tests.infra.test_host_files import env_file, tool, user_data_parts
from tests.infra.test_network_and_host import role_statements

LOGGING_SOURCES = (REPO_ROOT / "app/parent/relay.py", REPO_ROOT / "app/enclave/handler.py")


def log_group_id(template: Json) -> str:
    (found,) = [
        k for k in resources(template, "AWS::Logs::LogGroup") if k.startswith("ObservabilityLogGroup")
    ]
    return found


def test_log_group_keeps_logs_for_the_configured_days_and_goes_on_destroy(template: Json) -> None:
    group = template["Resources"][log_group_id(template)]
    assert group["Properties"]["RetentionInDays"] == 7
    assert group["DeletionPolicy"] == "Delete"


def test_log_retention_knob_applies_to_the_log_group(synth: SynthFn) -> None:
    template = synth({"log_retention_days": 30}).template
    assert template["Resources"][log_group_id(template)]["Properties"]["RetentionInDays"] == 30


def test_metric_filters_count_and_measure_from_the_json_lines(default: Synth) -> None:
    filters = resources(default.template, "AWS::Logs::MetricFilter")
    by_name = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"] for f in filters.values()
    }
    assert set(by_name) == {
        "CardsProcessed",
        "CardFailures",
        "EndToEndLatency",
        "EnclaveLatency",
        "EnclaveDecryptFailures",
        BOOT_FAILURES_METRIC,
    }
    for props in by_name.values():
        assert props["LogGroupName"] == {"Ref": log_group_id(default.template)}
        assert props["MetricTransformations"][0]["MetricNamespace"] == METRIC_NAMESPACE
    failures = by_name["CardFailures"]["MetricTransformations"][0]
    assert failures["Dimensions"] == [{"Key": "ErrorCode", "Value": "$.code"}]
    assert "DefaultValue" not in failures  # CloudWatch refuses one with dimensions
    latency = by_name["EndToEndLatency"]["MetricTransformations"][0]
    assert (latency["MetricValue"], latency["Unit"]) == ("$.end_to_end_ms", "Milliseconds")


def test_metric_filters_match_messages_the_programs_really_log(template: Json) -> None:
    source = "\n".join(path.read_text() for path in LOGGING_SOURCES)
    for metric_filter in resources(template, "AWS::Logs::MetricFilter").values():
        for message in re.findall(r'\$\.msg = "([^"]+)"', metric_filter["Properties"]["FilterPattern"]):
            assert f'"{message}"' in source, message


def _alarm(template: Json, namespace: str) -> Json:
    found: Json
    (found,) = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == namespace
    ]
    return found


def test_dead_letter_alarm_fires_on_the_first_parked_card(template: Json) -> None:
    props = _alarm(template, "AWS/SQS")
    (dlq_id,) = [k for k in resources(template, "AWS::SQS::Queue") if k.startswith("QueuesDeadLetterQueue")]
    assert props["Namespace"] == "AWS/SQS"
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"


def test_a_failed_unsignalled_boot_is_counted_and_alarms_without_touching_the_host(template: Json) -> None:
    # The phrase bootstrap.sh logs when its boot failed and no stack operation took the FAILURE signal.
    bootstrap = (HOST_FILES_DIR / "bootstrap.sh").read_text()
    assert bootstrap.count(f'log "{BOOT_FAILED_UNSIGNALLED}: ') == 2  # not waiting; signal not taken
    (boot_filter,) = [
        f["Properties"]
        for f in resources(template, "AWS::Logs::MetricFilter").values()
        if f["Properties"]["MetricTransformations"][0]["MetricName"] == BOOT_FAILURES_METRIC
    ]
    assert boot_filter["FilterPattern"] == f'"{BOOT_FAILED_UNSIGNALLED}"'
    assert boot_filter["LogGroupName"] == {"Ref": log_group_id(template)}
    props = _alarm(template, METRIC_NAMESPACE)
    assert props["MetricName"] == BOOT_FAILURES_METRIC
    assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"
    # Told, not acted on: no alarm action, and nothing marks an instance unhealthy (docs/operations.md).
    assert "AlarmActions" not in props
    assert "set-instance-health" not in json.dumps(template).lower()


def test_dashboard_shows_cards_failures_latency_and_queues(template: Json) -> None:
    _, dashboard = only(template, "AWS::CloudWatch::Dashboard")
    body = evaluate(dashboard["Properties"]["DashboardBody"])
    widgets = json.loads(body)["widgets"]
    titles = {w["properties"].get("title") for w in widgets}
    assert {"Cards processed", "Failures by error code (relay)", "Latency p90 (ms)", "Cards queue"} <= titles
    assert "ApproximateAgeOfOldestMessage" in body
    assert "Dead-letter queue depth" in titles


def test_run_documents_send_cards_and_print_status(default: Synth) -> None:
    documents = resources(default.template, "AWS::SSM::Document")
    assert len(documents) == 2
    by_id = {k.removeprefix("RunDocuments")[:6]: d["Properties"] for k, d in documents.items()}
    send, status = by_id["SendCa"], by_id["Status"]
    assert send["DocumentType"] == status["DocumentType"] == "Command"
    assert send["Content"]["mainSteps"][0]["inputs"]["runCommand"] == [f"{NITRO_DEMO} send {{{{ Count }}}}"]
    pattern = re.compile(send["Content"]["parameters"]["Count"]["allowedPattern"])
    assert [bool(pattern.match(v)) for v in ("10", "1000", "0", "1001", "5; rm -rf /")] == [
        True,
        True,
        False,
        False,
        False,
    ]
    assert status["Content"]["mainSteps"][0]["inputs"]["runCommand"] == [
        "rc=0",
        f"{NITRO_DEMO} status --report-only || rc=$?",
        f"{NITRO_DEMO} doctor --report-only || rc=$?",
        'exit "$rc"',
    ]


def test_operations_outputs(default: Synth) -> None:
    outputs = default.template["Outputs"]
    default.assertions.has_output("LogGroupName", {"Value": {"Ref": log_group_id(default.template)}})
    assert evaluate(outputs["DashboardUrl"]["Value"]).startswith(
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards:name=ref-"
    )
    for name in ("DeadLetterAlarmName", "BootFailureAlarmName"):
        default.assertions.has_output(
            name, {"Value": assertions.Match.object_like({"Ref": assertions.Match.any_value()})}
        )
    group = evaluate(outputs["HostGroupName"]["Value"])
    send = evaluate(outputs["SendCardsCommand"]["Value"])
    # One host sends the cards (whichever is the group's first InService host now).
    assert send.startswith(
        f"iid=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names {group} "
    )
    assert "aws ssm send-command --document-name ref-RunDocumentsSendCards" in send
    assert '--instance-ids "$iid" --parameters Count=10' in send
    assert "get-command-invocation" in send
    # Every host reports its status, by the tag EC2 Auto Scaling puts on each.
    status = evaluate(outputs["StatusCommand"]["Value"])
    assert f"--targets Key=tag:aws:autoscaling:groupName,Values={group} " in status
    assert "list-command-invocations" in status


@pytest.mark.parametrize("name", ["SendCardsCommand", "StatusCommand"])
def test_ssm_commands_in_the_outputs_pass_shellcheck(name: str, template: Json, tmp_path: Path) -> None:
    script = tmp_path / "command.sh"
    script.write_text("#!/bin/bash\n" + evaluate(template["Outputs"][name]["Value"]) + "\n")
    result = subprocess.run([tool("shellcheck"), str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_instance_role_may_write_to_its_log_group_only(template: Json) -> None:
    log_statements = [s for s in statements(template) if any(a.startswith("logs:") for a in s.actions)]
    shippers = [s for s in log_statements if s.sid == "ShipLogs"]
    assert len(shippers) == 1
    assert set(shippers[0].actions) == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
    }
    (ship,) = [s for s in role_statements(template) if s.get("Sid") == "ShipLogs"]
    assert ship["Resource"] == {"Fn::GetAtt": [log_group_id(template), "Arn"]}


def test_agent_config_ships_every_part_to_the_stack_log_group(template: Json) -> None:
    config = json.loads(user_data_parts(template)["CloudWatchAgentJson"])
    entries = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert {e["log_group_name"] for e in entries} == {f"ref-{log_group_id(template)}"}
    streams = {e["log_stream_name"].removeprefix("{instance_id}/"): e["file_path"] for e in entries}
    assert {"bootstrap", "relay", "enclave", "vsock-proxy"} <= set(streams)
    assert streams["bootstrap"] == "/var/log/cloud-init-output.log"


def test_env_file_names_the_log_group(template: Json, tmp_path: Path) -> None:
    env = env_file(template, tmp_path)
    assert env["CW_LOG_GROUP"] == f"ref-{log_group_id(template)}"
    assert env["ENCLAVE_LOG_LISTEN_URL"] == "vsock://any:5005"

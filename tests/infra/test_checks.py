"""Whole-template checks: cdk-nag AwsSolutions finds nothing unacknowledged; cfn-lint passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk import aws_sqs as sqs

from infra.app import build_app
from infra.nag import ACKNOWLEDGMENTS
from tests.infra.conftest import CDK_JSON_CONTEXT, Synth

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def test_synth_passes_cdk_nag_and_template_validation(default: Synth) -> None:
    # A violation would have raised ValidationFailed while synthesizing the session template.
    report = json.loads((default.outdir / "validation-report.json").read_text())
    for plugin in report["pluginReports"]:
        assert plugin["violations"] == [], (plugin["pluginName"], plugin["violations"])


def test_cdk_nag_is_active_on_every_synth(tmp_path: Path) -> None:
    app = App(context=dict(CDK_JSON_CONTEXT), outdir=str(tmp_path))
    stack = build_app(app)
    sqs.Queue(stack, "QueueWithoutDeadLetterOrTls")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert {v["ruleName"] for v in nag["violations"]} >= {"AwsSolutions-SQS3", "AwsSolutions-SQS4"}


def test_every_acknowledgment_gives_a_specific_reason() -> None:
    for acknowledgment in ACKNOWLEDGMENTS:
        assert len(acknowledgment.reason) > 40, acknowledgment.id


def test_cfn_lint_passes_on_the_synthesized_template(default: Synth) -> None:
    # W3005 only: CDK itself gives every Lambda function (the enclave image build's handler, the S3
    # auto-delete provider) a DependsOn on its role that its Role GetAtt already implies;
    # redundant, harmless, and not ours to remove. Every other rule applies.
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--", str(default.json_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

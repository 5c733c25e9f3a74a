"""Observability: the log group the instance's CloudWatch agent ships to, metrics drawn from the relay's and
the enclave's JSON log lines (metric filters: no code change in the relay), a dashboard with SQS's own
metrics beside them, an alarm when a card lands on the dead-letter queue, and one when a host's boot fails
with no stack operation to tell. Grants nothing to anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants
from infra.constructs import host_logs
from infra.constructs.network import RETENTION
from infra.constructs.queues import Queues

PERIOD = Duration.minutes(1)
# bootstrap.sh's line for a boot that failed and reached no stack operation (a host the group launched on
# its own, e.g. a replacement, or a signal CloudFormation never took): it serves no cards and nothing else
# tells anyone. Plain text in the bootstrap stream (cloud-init's output), matched as a quoted phrase.
BOOT_FAILED_UNSIGNALLED = "boot FAILED and not signalled"
BOOT_FAILURES_METRIC = "UnsignalledBootFailures"
RELAY = '$.logger = "app.parent.relay"'
ENCLAVE = '$.source = "enclave"'
# The log stream (host_logs) each kind of line arrives in; a metric whose stream is not shipped stays empty.
STREAM_OF = {RELAY: "relay", ENCLAVE: "enclave"}


@dataclass(frozen=True)
class LogMetric:
    """One metric filter: a JSON pattern over the log lines and what it counts or measures."""

    construct_id: str
    source: str  # RELAY or ENCLAVE: whose lines it reads
    metric_name: str
    condition: str  # on those lines' JSON fields
    value: str = "1"
    unit: cloudwatch.Unit = cloudwatch.Unit.COUNT
    by_error_code: bool = False

    @property
    def stream(self) -> str:
        return STREAM_OF[self.source]

    @property
    def pattern(self) -> str:
        return f"{{ {self.source} && {self.condition} }}"


LOG_METRICS = (
    LogMetric("CardsProcessed", RELAY, "CardsProcessed", '$.msg = "card processed"'),
    LogMetric(
        "CardFailures",
        RELAY,
        "CardFailures",
        '($.status = "rejected" || $.status = "retry")',
        by_error_code=True,
    ),
    LogMetric(
        "EndToEndLatency",
        RELAY,
        "EndToEndLatency",
        '$.msg = "card processed" && $.end_to_end_ms >= 0',
        value="$.end_to_end_ms",
        unit=cloudwatch.Unit.MILLISECONDS,
    ),
    LogMetric(
        "EnclaveLatency",
        RELAY,
        "EnclaveLatency",
        '$.msg = "card processed" && $.enclave_ms >= 0',
        value="$.enclave_ms",
        unit=cloudwatch.Unit.MILLISECONDS,
    ),
    LogMetric(
        "EnclaveDecryptFailures",
        ENCLAVE,
        "EnclaveDecryptFailures",
        '$.msg = "decrypt refused"',
        by_error_code=True,
    ),
)


class Observability(Construct):
    """Log group, metric filters, dashboard and the dead-letter alarm."""

    def __init__(
        self, scope: Construct, construct_id: str, *, log_retention_days: int, queues: Queues
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=RETENTION[log_retention_days], removal_policy=RemovalPolicy.DESTROY
        )
        self.metrics = {m.metric_name: self._metric_filter(m) for m in LOG_METRICS}
        dead_letters = queues.dead_letter.metric_approximate_number_of_messages_visible(
            period=PERIOD, statistic="Maximum"
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLetterAlarm",
            alarm_description="nitro-enclave-demo: a card was parked on the dead-letter queue; its "
            "error_code attribute says why (nitro-demo status, then read the message)",
            metric=dead_letters,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.boot_failure_alarm = self._boot_failure_alarm()
        self.dashboard = self._dashboard(queues, dead_letters)
        self.dashboard_url = Fn.join(
            "",
            [
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}#dashboards:name=",
                self.dashboard.dashboard_name,
            ],
        )

    def _boot_failure_alarm(self) -> cloudwatch.Alarm:
        """A host whose boot failed with no stack operation to tell: counted from its bootstrap line, and
        an alarm at the first. Nothing marks the host unhealthy: see docs/operations.md."""
        self.log_group.add_metric_filter(
            "UnsignalledBootFailures",
            filter_pattern=logs.FilterPattern.literal(f'"{BOOT_FAILED_UNSIGNALLED}"'),
            metric_namespace=constants.METRIC_NAMESPACE,
            metric_name=BOOT_FAILURES_METRIC,
            metric_value="1",
            default_value=0,
        )
        failures = cloudwatch.Metric(
            namespace=constants.METRIC_NAMESPACE,
            metric_name=BOOT_FAILURES_METRIC,
            period=PERIOD,
            statistic="Sum",
        )
        return cloudwatch.Alarm(
            self,
            "BootFailureAlarm",
            alarm_description="nitro-enclave-demo: a host's boot failed and no stack operation was told (a "
            "replacement host, or a signal CloudFormation did not take); it serves no cards. Its bootstrap "
            "log stream says which step failed and why (docs/operations.md)",
            metric=failures,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _metric_filter(self, spec: LogMetric) -> cloudwatch.Metric:
        self.log_group.add_metric_filter(
            spec.construct_id,
            filter_pattern=logs.FilterPattern.literal(spec.pattern),
            metric_namespace=constants.METRIC_NAMESPACE,
            metric_name=spec.metric_name,
            metric_value=spec.value,
            unit=spec.unit,
            # CloudWatch refuses a default value on a filter with dimensions.
            default_value=None if spec.by_error_code else 0,
            dimensions={"ErrorCode": "$.code"} if spec.by_error_code else None,
        )
        statistic = "Sum" if spec.unit is cloudwatch.Unit.COUNT else "p90"
        return cloudwatch.Metric(
            namespace=constants.METRIC_NAMESPACE,
            metric_name=spec.metric_name,
            period=PERIOD,
            statistic=statistic,
        )

    def _failures_by_code(self, metric_name: str) -> cloudwatch.MathExpression:
        search = (
            f"SEARCH('{{{constants.METRIC_NAMESPACE},ErrorCode}} MetricName=\"{metric_name}\"', 'Sum', 60)"
        )
        return cloudwatch.MathExpression(expression=search, label=metric_name, period=PERIOD)

    def _dashboard(self, queues: Queues, dead_letters: cloudwatch.IMetric) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=Duration.hours(3))
        cards = queues.cards
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Cards processed", left=[self.metrics["CardsProcessed"]], width=8),
            cloudwatch.GraphWidget(
                title="Failures by error code (relay)", left=[self._failures_by_code("CardFailures")], width=8
            ),
            cloudwatch.GraphWidget(
                title="Decrypts refused in the enclave",
                left=[self._failures_by_code("EnclaveDecryptFailures")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Latency p90 (ms)",
                left=[self.metrics["EndToEndLatency"], self.metrics["EnclaveLatency"]],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Cards queue",
                left=[
                    cards.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
                ],
                right=[cards.metric_approximate_age_of_oldest_message(period=PERIOD, statistic="Maximum")],
                width=8,
            ),
            cloudwatch.GraphWidget(title="Dead-letter queue depth", left=[dead_letters], width=8),
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[self.dead_letter_alarm, self.boot_failure_alarm],
                width=8,
                height=3,
            ),
            self._recent_problems(),
        )
        return dashboard

    def _recent_problems(self) -> cloudwatch.LogQueryWidget:
        return cloudwatch.LogQueryWidget(
            title=f"Recent warnings and errors ({', '.join(f.stream for f in host_logs.shipped())})",
            log_group_names=[self.log_group.log_group_name],
            query_lines=[
                "fields @timestamp, @logStream, level, msg, code, @message",
                'filter level in ["warning", "error", "critical"] or @message like /\\[ E\\d\\d \\]|Error:/',
                "sort @timestamp desc",
                "limit 50",
            ],
            width=16,
        )

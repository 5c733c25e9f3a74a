"""`status`: the health of every part at a glance — services, enclave and measurements, a ping over
vsock and the clock skew it reports, queue and dead-letter depths, age of the oldest card, recent errors.
Works locally too: parts that do not exist there (systemd, nitro-cli) are reported as skipped.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.ops import collect, enclave_checks, host_checks
from app.ops.findings import Finding, Status, ok, skip
from app.shared import settings

ERROR_MARKERS = ('"level":"error"', '"level":"critical"', '"level":"warning"', "[ E", "Error:")
RECENT_ERRORS = 10
QUEUE_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
AGE_WARN_S = 300
ENV_FILE_HINT = "`nitro-demo status` reads /etc/nitro-enclave-demo/demo.env; locally, `make serve` prints it"
QUEUE_UNREADABLE_TODO = (
    "the caller needs sqs:GetQueueAttributes on it (`aws sts get-caller-identity` shows the caller); "
    "locally, is `make serve` still running?"
)


def recent_errors(journal_text: str | None, limit: int = RECENT_ERRORS) -> Finding:
    """The last `limit` error/warning lines of the demo's units (JSON logs or tool text)."""
    name = "recent errors"
    if journal_text is None:
        return skip(name, "no journal here")
    lines = [line for line in journal_text.splitlines() if any(m in line for m in ERROR_MARKERS)]
    if not lines:
        return ok(name, "none in the journal since boot")
    shown = "\n         ".join(line[:300] for line in lines[-limit:])
    return Finding(name, Status.WARN, f"{len(lines)} line(s), the last ones:\n         {shown}")


def enclave_measurements(describe_text: str | None) -> Finding:
    name = "enclave measurements"
    if describe_text is None:
        return skip(name, "nitro-cli not available here")
    try:
        enclave = enclave_checks.ours(enclave_checks.parse_describe(describe_text))
    except ValueError:
        return skip(name, "describe-enclaves output unreadable")
    if enclave is None:
        return skip(name, "no enclave running")
    return ok(name, f"PCR0 {enclave.pcr0 or 'unknown'}{' (DEBUG MODE)' if enclave.debug else ''}")


def queue_finding(
    label: str, attributes: Mapping[str, str] | str | None, *, dead_letter: bool, env_name: str = ""
) -> Finding:
    """`attributes` is the queue's attributes, the reason they could not be read, or None for no URL."""
    name = f"queue {label}"
    if attributes is None:
        return Finding(name, Status.SKIP, "no queue URL", f"set {env_name or 'its URL'} ({ENV_FILE_HINT})")
    if isinstance(attributes, str):
        return Finding(name, Status.SKIP, f"not readable: {attributes}", QUEUE_UNREADABLE_TODO)
    waiting = int(attributes.get("ApproximateNumberOfMessages", "0"))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0"))
    what = f"{waiting} waiting, {in_flight} in flight"
    if dead_letter and waiting + in_flight:
        todo = "read the error_code attribute of the parked messages; redrive once fixed"
        return Finding(name, Status.WARN, what, todo)
    return ok(name, what)


def age_finding(age_s: float | None) -> Finding:
    name = "oldest card"
    if age_s is None:
        return skip(name, "ApproximateAgeOfOldestMessage not available (CloudWatch, 1-minute data)")
    what = f"{age_s:.0f} s old"
    if age_s > AGE_WARN_S:
        return Finding(name, Status.WARN, what, "the relay is not keeping up or not running")
    return ok(name, what)


def ping_finding(answer: Mapping[str, Any] | None, error: str | None, url: str) -> Finding:
    name = "enclave ping"
    if answer is None:
        return Finding(
            name, Status.FAIL, f"no answer over {url}: {error}", "journalctl -u nitro-enclave-demo-enclave"
        )
    return ok(name, f"answers over {url} (uptime {answer.get('uptime_s')} s)")


def _queue_attributes(sqs: Any, url: str | None) -> Mapping[str, str] | str | None:
    """The attributes, or why they could not be read (an error name, shown in the finding, not logged)."""
    if not url:
        return None
    try:
        attributes: Mapping[str, str] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=list(QUEUE_ATTRIBUTES)
        )["Attributes"]
    except ClientError as error:
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    except BotoCoreError as error:
        return type(error).__name__
    return attributes


def _oldest_age_s(cloudwatch: Any, queue_url: str | None) -> float | None:
    """SQS has no queue attribute for it: the CloudWatch metric, last 5 minutes."""
    if not queue_url:
        return None

    now = datetime.datetime.now(datetime.UTC)
    try:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/SQS",
            MetricName="ApproximateAgeOfOldestMessage",
            Dimensions=[{"Name": "QueueName", "Value": queue_url.rsplit("/", 1)[-1]}],
            StartTime=now - datetime.timedelta(minutes=5),
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    except (BotoCoreError, ClientError):
        return None
    latest = max(points, key=lambda p: p["Timestamp"], default=None)
    return float(latest["Maximum"]) if latest else None


def _queues(environ: Mapping[str, str], config: Config) -> list[Finding]:
    sqs = boto3.client("sqs", region_name=environ.get("AWS_REGION", "us-east-1"), config=config)
    queues = (
        ("cards", settings.ENV_CARDS_QUEUE_URL, False),
        ("dead-letter", settings.ENV_DEAD_LETTER_QUEUE_URL, True),
        ("results", settings.ENV_RESULTS_QUEUE_URL, False),
    )
    return [
        queue_finding(label, _queue_attributes(sqs, environ.get(env)), dead_letter=dlq, env_name=env)
        for label, env, dlq in queues
    ]


def _oldest(environ: Mapping[str, str], config: Config) -> Finding:
    cloudwatch = boto3.client("cloudwatch", region_name=environ.get("AWS_REGION", "us-east-1"), config=config)
    return age_finding(_oldest_age_s(cloudwatch, environ.get(settings.ENV_CARDS_QUEUE_URL)))


def gather(
    environ: Mapping[str, str], enclave_url: str, doing: Callable[[str], None] = lambda _: None
) -> list[Finding]:
    """Every check in turn; `doing` hears which one runs (the CLI shows it on a terminal)."""
    config = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 2})
    doing("reading the services and the enclave (systemctl, nitro-cli)")
    describe = collect.run(["nitro-cli", "describe-enclaves"], allow_failure=True)
    show = collect.run(["systemctl", "show", "-p", collect.SHOW_PROPERTIES, *host_checks.DEMO_UNITS])
    findings = [
        *host_checks.check_services(show),
        enclave_checks.check_enclave(describe, None),
        enclave_measurements(describe),
    ]
    doing(f"pinging the enclave over {enclave_url}")
    answer, error = collect.ping(enclave_url)
    findings += [ping_finding(answer, error, enclave_url), enclave_checks.check_enclave_clock(answer)]
    doing("reading the queues (SQS)")
    findings += _queues(environ, config)
    doing("reading the age of the oldest card (CloudWatch)")
    findings.append(_oldest(environ, config))
    doing("reading recent errors (journal)")
    findings.append(recent_errors(collect.journal(*host_checks.DEMO_UNITS)))
    return findings


GATHER_STEPS = 5  # the `doing` calls in gather()

"""`status`: the health of every part at a glance — services, enclave and measurements, a ping over
vsock, queue and dead-letter depths, age of the oldest card, recent errors. Works locally too: parts
that do not exist there (systemd, nitro-cli) are reported as skipped.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.ops import collect, enclave_checks, host_checks
from app.ops.findings import Finding, Status, ok, skip
from app.parent.enclave_client import EnclaveClient, EnclaveError
from app.shared.protocol import Op

log = logging.getLogger(__name__)

ERROR_MARKERS = ('"level":"error"', '"level":"critical"', '"level":"warning"', "[ E", "Error:")
RECENT_ERRORS = 10
QUEUE_ATTRIBUTES = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
AGE_WARN_S = 300


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


def queue_finding(label: str, attributes: Mapping[str, str] | None, *, dead_letter: bool) -> Finding:
    name = f"queue {label}"
    if attributes is None:
        return skip(name, "not reachable (no URL or no access)")
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


def _queue_attributes(sqs: Any, url: str | None) -> Mapping[str, str] | None:
    if not url:
        return None

    try:
        attributes: Mapping[str, str] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=list(QUEUE_ATTRIBUTES)
        )["Attributes"]
    except (BotoCoreError, ClientError) as error:
        log.warning("queue attributes not readable", extra={"fields": {"error": type(error).__name__}})
        return None
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


def _ping(url: str) -> Finding:

    client = EnclaveClient(url, request_timeout_s=5.0)
    try:
        return ping_finding(client.call(Op.PING), None, url)
    except EnclaveError as error:
        return ping_finding(None, str(error), url)
    finally:
        client.close()


def _aws_findings(environ: Mapping[str, str]) -> list[Finding]:

    region = environ.get("AWS_REGION", "us-east-1")
    config = Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 2})
    sqs = boto3.client("sqs", region_name=region, config=config)
    cards_url = environ.get("CARDS_QUEUE_URL")
    return [
        queue_finding("cards", _queue_attributes(sqs, cards_url), dead_letter=False),
        queue_finding(
            "dead-letter", _queue_attributes(sqs, environ.get("DEAD_LETTER_QUEUE_URL")), dead_letter=True
        ),
        queue_finding("results", _queue_attributes(sqs, environ.get("RESULTS_QUEUE_URL")), dead_letter=False),
        age_finding(_oldest_age_s(boto3.client("cloudwatch", region_name=region, config=config), cards_url)),
    ]


def gather(environ: Mapping[str, str], enclave_url: str) -> list[Finding]:
    describe = collect.run(["nitro-cli", "describe-enclaves"], allow_failure=True)
    show = collect.run(["systemctl", "show", "-p", collect.SHOW_PROPERTIES, *host_checks.DEMO_UNITS])
    return [
        *host_checks.check_services(show),
        enclave_checks.check_enclave(describe, None),
        enclave_measurements(describe),
        _ping(enclave_url),
        *_aws_findings(environ),
        recent_errors(collect.journal(*host_checks.DEMO_UNITS)),
    ]

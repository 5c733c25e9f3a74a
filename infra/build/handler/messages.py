"""The words a failed Custom::EnclaveImageBuild request gives CloudFormation: the build's own reason, and
what to do about a CodeBuild quota refusal. Values from the build are shortened, never expanded."""

from __future__ import annotations

import os
from typing import Any

MAX_SHOWN_CHARS = 200
# The account quota a StartBuild refused with AccountLimitExceededException counts against (the Lambda's
# environment names it for the project's compute type; CodeBuild User Guide, "Quotas for AWS CodeBuild").
QUOTA_NAME_ENV = "BUILD_QUOTA_NAME"
DEFAULT_QUOTA_NAME = "Concurrently running builds for Linux/Medium environment"


def failure_reason(build: dict[str, Any]) -> str:
    """The build's own reason: its status, the phase that did not succeed and CodeBuild's messages about it,
    and the link to its log."""
    status = build.get("buildStatus", "UNKNOWN")
    failed = [p for p in build.get("phases", []) if p.get("phaseStatus") not in (None, "SUCCEEDED")]
    where = ""
    if failed:
        phase = failed[0]
        contexts = "; ".join(
            ": ".join(filter(None, (c.get("statusCode"), c.get("message"))))
            for c in phase.get("contexts", [])
        )
        where = f" in phase {phase.get('phaseType')} ({phase.get('phaseStatus')}): {short(contexts or '-')}"
    link = build.get("logs", {}).get("deepLink") or "no log link (the build may not have started)"
    return f"CodeBuild build {build.get('id')} {status}{where}. Log: {link}"


def quota_refusal(project: str, refusal: str) -> str:
    """What a deployer needs when CodeBuild refuses to start a build for the account's quota (a new account
    may have 0 concurrent builds: awslabs/landing-zone-accelerator-on-aws#1013)."""
    quota = os.environ.get(QUOTA_NAME_ENV) or DEFAULT_QUOTA_NAME
    return (
        f"CodeBuild refused to start a build of {project}: {short(refusal)}. The account's CodeBuild quota "
        f"'{quota}' is exhausted or 0 (new accounts may start at 0). Raise it in the Service Quotas console "
        f"(AWS services > AWS CodeBuild > '{quota}' > Request increase at account level), or with "
        "`aws service-quotas list-service-quotas --service-code codebuild` (its QuotaCode) and "
        "`aws service-quotas request-service-quota-increase --service-code codebuild "
        "--quota-code <QuotaCode> --desired-value 1`; then deploy again."
    )


def short(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "..."

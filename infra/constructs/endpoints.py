"""The AWS APIs a host calls, by VPC endpoint service name (com.amazonaws.<region>.<name>): what an isolated
network (`-c network=isolated`) must give the hosts, since they have no other way out.

Derived from the code that runs on a host; tests/infra/test_endpoints.py scans the host programs' boto3
clients, the enclave's KMS host name and the host scripts' `aws <service>` calls and fails on any service
missing here. Pure data: network.py creates the endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping

# Interface endpoints (AWS PrivateLink), private DNS on: the usual <name>.<region>.amazonaws.com resolves to
# the endpoint's addresses inside the VPC, so no program, agent or allowlist changes.
INTERFACE_ENDPOINTS: Mapping[str, str] = {
    "kms": "the enclave's Decrypt through vsock-proxy (kms.<region>.amazonaws.com); Encrypt by the producer "
    "and the boot canary; `attest` and `nitro-demo doctor` read the key policy",
    "sqs": "the relay (cards in, results and dead letters out), the producer, `nitro-demo status`",
    "ssm": "the SSM Agent (registration, Run Command); `nitro-demo doctor` reads the pinned PCR0 parameter",
    "ssmmessages": "the SSM Agent's Session Manager channels",
    "ec2messages": "the SSM Agent's Run Command channel",
    "logs": "the CloudWatch agent ships the hosts' log files",
    "monitoring": "`nitro-demo status` reads the cards queue's age (cloudwatch:GetMetricStatistics)",
    "cloudformation": "the boot signal (`aws cloudformation signal-resource`)",
}

# Interface endpoints whose policy admits only this account's principals acting on this account's resources
# (aws:PrincipalAccount, aws:ResourceAccount): a host's credentials cannot send cards, logs or signals to
# another account's queue, log group or stack through them. The SSM Agent's two message channels and
# CloudWatch metric reads keep the default (full access) policy: their calls name no resource of the
# account (ssmmessages and ec2messages actions define no resource types; metric reads take resource "*").
# The ssm endpoint also admits this account's reads of AWS-owned documents and public parameters (network.py).
ACCOUNT_SCOPED_ENDPOINTS = frozenset({"kms", "sqs", "ssm", "logs", "cloudformation"})

# The gateway endpoint (no hourly charge): dnf's Amazon Linux 2023 repositories, the project's code (`aws s3
# cp` in user-data.sh) and the EIF (`aws s3api get-object` in bootstrap.sh) are all S3 objects.
GATEWAY_ENDPOINTS: Mapping[str, str] = {
    "s3": "dnf's Amazon Linux 2023 repositories, the project's code asset, the EIF",
}

# AL2023's dnf reaches its repositories as al2023-repos-<region>-de612dc2.s3.dualstack.<region>.amazonaws.com
# (its mirror list, /etc/yum.repos.d/amazonlinux.repo on the AMI): a bucket the gateway endpoint's policy
# must admit for reads.
AL2023_REPOSITORY_BUCKET = "al2023-repos-{region}-de612dc2"

# The boto3 client name or AWS CLI command that differs from its endpoint service name.
CLIENT_TO_ENDPOINT: Mapping[str, str] = {"cloudwatch": "monitoring", "s3api": "s3"}


def endpoint_for(client_or_command: str) -> str:
    """The endpoint service name that serves a boto3 client (`cloudwatch`) or CLI command (`s3api`)."""
    return CLIENT_TO_ENDPOINT.get(client_or_command, client_or_command)

"""Every way the rehearsal differs from a real first boot, printed by every run (docs/rehearsal.md has the
same table with the reasons): what the first real deploy still tests for the first time."""

from __future__ import annotations

DEVIATIONS: tuple[tuple[str, str], ...] = (
    ("OS", "Debian 12 (debootstrap minbase) with systemd 252, not Amazon Linux 2023"),
    (
        "cloud-init",
        "a oneshot unit runs the rendered user data as cloud-final's scripts-user would; no cloud-init",
    ),
    (
        "AWS APIs",
        "moto emulator (KMS, SQS, S3, SSM) in the rehearsal's network namespace, via AWS_ENDPOINT_URL",
    ),
    (
        "endpoints",
        "AWS_ENDPOINT_URL and the vsock-over-TCP map set in systemd's DefaultEnvironment (drop-in)",
    ),
    ("IAM", "not evaluated except for KMS: local principals (instance role, administrator) by access key"),
    ("key policy", "evaluated by local mode's evaluator (app.keypolicy), not by KMS"),
    (
        "IMDS",
        "IMDSv2 stand-in on 169.254.169.254:80 inside the namespace (token, role credentials, identity)",
    ),
    ("wait condition", "a local HTTP handle taking CloudFormation's signal JSON; no presigned S3 URL"),
    ("PyPI", "a wheelhouse built on the host, bound read-only, /etc/pip.conf no-index"),
    ("AWS CLI", "v1 from PyPI in its own venv as /usr/local/bin/aws (AL2023 ships v2)"),
    ("vsock", "TCP on loopback stands in for AF_VSOCK (no vsock loopback on this machine)"),
    ("KMS TLS", "the enclave's KMS calls reach the emulator's keep-alive HTTPS listener (localhost)"),
    ("attest", "the attestation chain ends at the local PKI's root, not the AWS Nitro root"),
    ("enclave", "a software enclave process with a software NSM and a local PKI, not a Nitro Enclave"),
    (
        "stand-ins",
        "dnf, allocator, nitro-cli, vsock-proxy, docker, CloudWatch agent: contract-checking stand-ins",
    ),
    ("CloudWatch", "no log shipping: the agent stand-in only checks its config; journals stay in the rootfs"),
)


def lines() -> list[str]:
    width = max(len(name) for name, _ in DEVIATIONS)
    return [f"  {name.ljust(width)}  {text}" for name, text in DEVIATIONS]

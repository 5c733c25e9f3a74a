"""Every way the rehearsal differs from a real deploy and update, printed by every run: what the first real
deploy still tests for the first time. docs/rehearsal.md has the same table (the same areas in the same order,
with what the real deploy does); tests/rehearsal/test_deviations.py holds the two together."""

from __future__ import annotations

DEVIATIONS: tuple[tuple[str, str], ...] = (
    ("OS", "Debian 12 (debootstrap minbase) with systemd 252, not Amazon Linux 2023"),
    (
        "first boot",
        "a oneshot unit runs the rendered user data as cloud-final's scripts-user would; no cloud-init",
    ),
    (
        "CloudFormation",
        "the harness creates and updates the resources in CloudFormation's order and replays a failed "
        "update's rollback (the group before the key policy: our reading, not a documented order); "
        "SignalResource is a stand-in (query protocol, signed, no IAM) reached through "
        "AWS_ENDPOINT_URL_CLOUDFORMATION",
    ),
    (
        "CodeBuild",
        "a stand-in for StartBuild/BatchGetBuilds/StopBuild (JSON 1.1); each build runs the project's "
        "buildspec in a systemd-nspawn container (Debian + stand-ins, not the AL2023 standard image)",
    ),
    (
        "custom resource",
        "the stack's own function, imported from its cdk.out asset and run in-process (no Lambda); its "
        "answer PUT over https to a loopback stand-in of the presigned S3 ResponseURL, whose certificate "
        "(made per run) the function trusts through SSL_CERT_FILE",
    ),
    (
        "Auto Scaling",
        "no group: the harness boots each host from the launch template's user data and replays the "
        "rolling update (new host, its signal, then the old one terminated); the second host has its own "
        "network namespace, its loopback bridged to the services",
    ),
    (
        "code change",
        "the roll's new code asset is the old one with a comment added to app/enclave/__init__.py, its "
        "hash replaced in the template as a new synth would; retire_previous sets the build's "
        "RetirePrevious",
    ),
    (
        "AWS APIs",
        "moto emulator (KMS, SQS, S3 with versioning, SSM) in the rehearsal's network namespace, via "
        "AWS_ENDPOINT_URL; bucket encryption, ownership, public access block and bucket policies are "
        "stored, not enforced",
    ),
    (
        "endpoints",
        "AWS_ENDPOINT_URL and the vsock-over-TCP map set in systemd's DefaultEnvironment (drop-in)",
    ),
    (
        "IAM",
        "not evaluated except for KMS: local principals (instance role, administrator) by access key; the "
        "CodeBuild role and the handlers' role have keys of their own that KMS does not know",
    ),
    ("key policy", "evaluated by local mode's evaluator (app.keypolicy), not by KMS"),
    (
        "KMS propagation",
        "the roll's new key policy reaches the emulator only after host-2's canary was refused 4 times "
        "(rehearsal/propagation.py); real KMS takes seconds, sometimes minutes, not a count",
    ),
    (
        "IMDS",
        "IMDSv2 stand-in on 169.254.169.254:80 inside the namespace (token, role credentials, identity)",
    ),
    (
        "network",
        "host-1 in the services' network namespace, host-2 in a namespace of its own, loopback bridged; "
        "no VPC",
    ),
    ("PyPI", "a wheelhouse built on the host, bound read-only, /etc/pip.conf no-index"),
    (
        "enclave base image",
        "python:3.11-slim is not pulled: a layer made from Debian 12's packages stands in, laid out as "
        "docker-library/python's Dockerfile lays it out (/usr/local/bin/python3.11, the python3, python "
        "and pip links, no python in /usr/bin); Debian's CPython 3.11.2 (not python.org's 3.11.x), its "
        "stdlib in /usr/lib/python3.11, pip 23.0.1 and setuptools 66.1.1 in "
        "/usr/local/lib/python3.11/dist-packages (not site-packages), no wheel, idle, python-config or "
        "netbase; only the packages the interpreter needs",
    ),
    (
        "image build RUN",
        "/bin/sh -c chrooted in the image's root with no network (own mount, pid and net namespaces, "
        "/proc, a minimal /dev); pip reads the wheels requirements.txt pins (fetched on the host, hashes "
        "checked) through PIP_NO_INDEX and PIP_FIND_LINKS added to RUN's environment; no layers, no "
        "build cache",
    ),
    ("AWS CLI", "v1 from PyPI in its own venv as /usr/local/bin/aws (AL2023 ships v2)"),
    (
        "vsock",
        "TCP on loopback stands in for AF_VSOCK (no vsock loopback on this machine): the parent's programs "
        "map it themselves (NITRO_DEMO_VSOCK_OVER_TCP); inside the enclave a seccomp supervisor maps the "
        "image's own AF_VSOCK sockets to 127.0.0.<CID>:<port> (app.shared.vsock_tcp's rule); those sockets "
        "are AF_INET: getsockname/accept answer ('127.0.0.<CID>', port), a socket rebuilt from an inherited "
        "fd reports AF_INET, so the image's transport.bound_url takes its vsock-over-TCP branch, not the "
        "AF_VSOCK one Nitro runs; a vsock port above 65535 (VMADDR_PORT_ANY) is refused with EINVAL",
    ),
    (
        "KMS connections",
        "the enclave dials kms.<region>.amazonaws.com through vsock-proxy to the emulator's keep-alive HTTPS "
        "listener, whose certificate (local PKI) names that host; the local PKI's TLS CA is appended to the "
        "unpacked image's botocore CA bundle (the image's files are otherwise as built)",
    ),
    ("nitro-demo attest", "the attestation chain ends at the local PKI's root, not the AWS Nitro root"),
    (
        "nitro-demo send",
        "results are verified against the local PKI's root (ATTESTATION_ROOT_PEM in the manager's "
        "environment), not the AWS Nitro root",
    ),
    (
        "enclave",
        "no enclave kernel, initramfs or VM: an init stand-in on the host kernel runs the EIF's Cmd with its "
        "Env in the EIF's root (chroot, cwd /, the init's PATH); CPUs and memory are not isolated; it shares "
        "the host's network namespace, where the supervisor refuses its IPv4/IPv6 bind and connect",
    ),
    (
        "/dev/nsm",
        "a plain file; its ioctl is answered by a seccomp supervisor with the software NSM (local PKI, "
        "software PCRs), not by the Nitro hypervisor's NSM",
    ),
    (
        "enclave root",
        "the init stand-in mounts nothing (no devtmpfs, /proc, /sys, /tmp, /run tmpfs, cgroups) and loads no "
        "nsm.ko; the command stays in the init's process group; nspawn runs with "
        "--system-call-filter=pidfd_getfd for the supervisor",
    ),
    (
        "enclave console",
        "the command's stdout/stderr kept in /var/log/nitro_enclaves/rehearsal-enclave-<id>.console for "
        "every enclave; on Nitro only a debug-mode enclave has a console (nitro-cli console)",
    ),
    (
        "enclave clock",
        "the enclave's clock is the host's: the skew to the NSM's time is measured and reported but never "
        "beyond the correction threshold, so only tests/enclave exercise the correction",
    ),
    (
        "EC2/Nitro tools",
        "dnf, allocator, nitro-cli, vsock-proxy, docker, CloudWatch agent: contract-checking stand-ins",
    ),
    (
        "logs",
        "no log shipping: the agent stand-in checks and keeps its config; the harness checks every file it "
        "watches exists and is not empty, and the relay's grows (nitro-cli's own log: only that it exists); "
        "journals stay in the rootfs",
    ),
)


def lines() -> list[str]:
    width = max(len(name) for name, _ in DEVIATIONS)
    return [f"  {name.ljust(width)}  {text}" for name, text in DEVIATIONS]

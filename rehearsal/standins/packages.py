"""The Amazon Linux 2023 packages the bootstrap installs, and what "installing" one puts on the rehearsed
host.

File lists follow the real packages: aws/aws-nitro-enclaves-cli `SPECS/aws-nitro-enclaves-cli.spec` (`%files`,
`%files devel`, `%pre` adds group `ne`, `%post` makes /var/log/nitro_enclaves and /run/nitro_enclaves,
`Requires: docker`, so installing the Nitro CLI installs Docker's package too, as dnf resolves it) and its
Makefile `install-tools` (paths). Every program is a rehearsal stand-in (a link into the stand-ins' library);
python3.11, its pip and jq come with the Debian root the harness builds, so they are only checked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

UNIT_DIR = "/usr/lib/systemd/system"
# The release the nitro-cli stand-in follows, its `--version` and the version dnf offers: Cargo.toml of
# aws-nitro-enclaves-cli at 2950b36 ("Prepare release 1.5.0").
NITRO_CLI_VERSION = "1.5.0"
STOCK_REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-south-1",
)


@dataclass(frozen=True)
class Package:
    name: str
    links: dict[str, str] = field(default_factory=dict)  # host path -> stand-in module file
    units: tuple[str, ...] = ()  # unit files from rehearsal/standins/units, into UNIT_DIR
    files: dict[str, str] = field(default_factory=dict)  # host path -> content (config: kept if present)
    dirs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    provided_by_root: tuple[str, ...] = ()  # paths the Debian root must already have
    requires: tuple[str, ...] = ()  # the spec's `Requires:` among these packages, installed with it
    version: str = ""  # the one version served here; "" means it cannot be asked for by version


def _stock_allowlist() -> str:
    entries = [f"- {{address: {kind}.{region}.amazonaws.com, port: 443}}"
               for region in STOCK_REGIONS for kind in ("kms", "kms-fips")]  # fmt: skip
    return "allowlist:\n" + "\n".join(entries) + "\n"


STOCK_ALLOCATOR_YAML = """---
# Enclave configuration file (the package's default: 512 MiB, 2 CPUs).
memory_mib: 512
cpu_count: 2
"""

BLOBS = "/usr/share/nitro_enclaves/blobs"
BLOB_NOTE = "rehearsal stand-in: the real -devel package ships the enclave kernel and init here\n"

PACKAGES = {
    p.name: p
    for p in (
        Package(
            "aws-nitro-enclaves-cli",
            links={
                "/usr/bin/nitro-cli": "nitro_cli.py",
                "/usr/bin/vsock-proxy": "vsock_proxy.py",
                "/usr/bin/nitro-enclaves-allocator": "nitro_enclaves_allocator.py",
            },
            units=("nitro-enclaves-allocator.service", "nitro-enclaves-vsock-proxy.service"),
            files={
                "/etc/nitro_enclaves/vsock-proxy.yaml": _stock_allowlist(),
                "/etc/nitro_enclaves/allocator.yaml": STOCK_ALLOCATOR_YAML,
                "/var/log/nitro_enclaves/nitro_enclaves.log": "",
            },
            dirs=("/run/nitro_enclaves",),
            groups=("ne",),
            # The spec's `Requires: docker` and `Requires: jq` (systemd, curl and openssl: the root's).
            requires=("docker", "jq"),
            version=NITRO_CLI_VERSION,
        ),
        Package(
            "aws-nitro-enclaves-cli-devel",
            version=NITRO_CLI_VERSION,
            files={f"{BLOBS}/{name}": BLOB_NOTE for name in ("bzImage", "init", "nsm.ko", "linuxkit")}
            | {f"{BLOBS}/cmdline": "reboot=k panic=30 pci=off nomodules console=ttyS0 random.trust_cpu=on\n"},
        ),
        Package(
            "docker",
            links={"/usr/bin/docker": "docker_front.py", "/usr/bin/dockerd": "dockerd.py"},
            units=("docker.service",),
            dirs=("/var/lib/docker",),
            groups=("docker",),
        ),
        Package(
            "amazon-cloudwatch-agent",
            links={
                "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl": "cloudwatch_agent_ctl.py"
            },
            dirs=("/opt/aws/amazon-cloudwatch-agent/logs", "/opt/aws/amazon-cloudwatch-agent/etc"),
        ),
        Package("python3.11", provided_by_root=("/usr/bin/python3.11",)),
        Package("python3.11-pip", provided_by_root=("/usr/lib/python3.11/ensurepip",)),
        Package("jq", provided_by_root=("/usr/bin/jq",)),
    )
}

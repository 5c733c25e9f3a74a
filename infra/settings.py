"""Deployment settings: the CDK context knobs, parsed and validated once.

Owns every rule about which values are possible on Nitro hardware. Reads no AWS state: synth must work
without credentials, so what cannot be known offline (exact instance sizes) is judged from the type name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.build.handler import enclave_build
from infra.constants import HOST_FILES_DIR

DEFAULTS: Mapping[str, Any] = {
    "instance_type": "c5.xlarge",
    "enclave_cpu_count": 2,
    "enclave_memory_mib": 3072,
    "enclave_cid": 16,
    "enclave_debug": False,
    "enclave_pcr0": "",
    "key_alias": "alias/nitro-enclave-demo",
    "encryption_context": {"app": "nitro-enclave-demo"},
    "boot_timeout_minutes": 45,
    "log_retention_days": 7,
    "hosts": 1,
    "retire_previous": False,
    # The version docs/reproducible-build.md's analysis read (aws-nitro-enclaves-cli v1.5.0, linuxkit 1.5.2
    # blob); "" leaves it to whatever the AL2023 repository serves.
    "nitro_cli_version": "1.5.0",
    # "public": public subnets, egress HTTPS only (no hourly charge beyond each host's public IPv4 address);
    # "isolated": no route to the internet, VPC endpoints for every API a host calls (README, "Network").
    "network": "public",
}
NETWORK_MODES = ("public", "isolated")

ZERO_PCR = "0" * 96
# KEY<TAB>PATTERN lines: the exact form of each demo.env value, as the host's reader checks it at boot.
DEMO_ENV_PATTERNS = HOST_FILES_DIR / "demo-env.patterns"
# The parent keeps at least this much memory for the relay, the agents and the page cache.
PARENT_RESERVED_MEMORY_MIB = 2048
MIN_ENCLAVE_MEMORY_MIB = 512
RESERVED_CIDS = range(4)
# Enclave hosts in the group. One is the original demo; ten is far beyond what one cards queue and one key
# need, and each rolling update replaces hosts one at a time for up to boot_timeout_minutes each, so a
# larger group would make every code change take hours to roll.
MIN_HOSTS = 1
MAX_HOSTS = 10
# boot_timeout_minutes is both the creation policy's Timeout (at most 12 hours) and the rolling update's
# PauseTime, whose documented maximum is one hour, PT1H (CloudFormation User Guide, "UpdatePolicy attribute",
# AutoScalingRollingUpdate). Refused above that rather than capped: a host that needs longer could never
# finish a roll, so a capped pause would only fail every later code change after a first deploy that worked.
# At least the boot's own waits: the enclave unit's start (TimeoutStartSec=600), 30 pings 10 s apart, the
# canary's propagation retries (app.parent.canary.RETRY_DEADLINE_S, 300 s) and the relay's start, which runs
# the canary again (TimeoutStartSec=420): 27 minutes, plus dnf and pip (tests/infra/test_host_files.py).
MIN_BOOT_TIMEOUT_MINUTES = 30
MAX_BOOT_TIMEOUT_MINUTES = 60
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365)
MAX_CID = 0xFFFFFFFE
# GiB of memory per vCPU for the families whose ratio is fixed; others are not memory-checked.
MEMORY_GIB_PER_VCPU = {"c": 2, "m": 4, "r": 8}
# No Nitro Enclaves support, as far as the name tells: burstable (t*) and Mac classes, these families.
UNSUPPORTED_CLASSES = frozenset({"t", "mac"})
UNSUPPORTED_FAMILIES = frozenset({"f1", "inf1", "g4ad"})
# Graviton (arm64), refused before any other check: the first-generation a1, and every family whose letters
# after the generation include "g" (c6g, c7gn, m6gd, r7g, t4g, x2gd, im4gn, is4gen, i4g, g5g, hpc7g, ...).
# No x86_64 family has such a letter (g4dn, g4ad, m5zn, c6in, ... do not).
ARM64_FAMILIES = frozenset({"a1"})
# Regions outside the `aws` partition, by the prefixes AWS gives them: aws-cn, aws-us-gov, the isolated
# aws-iso* partitions, and the European Sovereign Cloud (aws-eusc).
_OTHER_PARTITION_RE = re.compile(r"(cn|us-gov|us-iso[a-z]*|eu-iso[a-z]*|eusc)-[a-z0-9-]+")
_SIZE_VCPUS = {"medium": 1, "large": 2, "xlarge": 4}
_TYPE_RE = re.compile(r"(?P<family>(?P<cls>[a-z]+)(?P<gen>\d+)(?P<attrs>[a-z-]*))\.(?P<size>[a-z0-9]+)")


class SettingsError(ValueError):
    """A context value that cannot work; the message names the knob and the offending value."""


@dataclass(frozen=True)
class InstanceShape:
    """What the instance type name tells about the hardware."""

    name: str
    arm64: bool
    vcpus: int | None
    memory_mib: int | None


@dataclass(frozen=True)
class Settings:
    """Everything the stack needs from the outside world, after validation."""

    instance: InstanceShape
    enclave_cpu_count: int
    enclave_memory_mib: int
    enclave_cid: int
    enclave_debug: bool
    enclave_pcr0: str
    key_alias: str
    encryption_context: Mapping[str, str]
    boot_timeout_minutes: int
    log_retention_days: int
    hosts: int
    retire_previous: bool
    nitro_cli_version: str  # X.Y.Z to install; "" = whatever the AL2023 repository serves to the build
    network: str  # one of NETWORK_MODES


def parse_instance_type(name: str) -> InstanceShape:
    match = _TYPE_RE.fullmatch(name)
    if match is None:
        raise SettingsError(f"instance_type {name!r} is not an EC2 instance type name like 'c5.xlarge'")
    family, cls, size = match["family"], match["cls"], match["size"]
    arm64 = "g" in match["attrs"] or family in ARM64_FAMILIES
    # An arm64 type (a1, t4g) is left to check_architecture, whose refusal comes first and names the reason
    # that holds for every Graviton type.
    if not arm64 and (cls in UNSUPPORTED_CLASSES or family in UNSUPPORTED_FAMILIES):
        raise SettingsError(f"instance_type {name!r}: the {family} family does not support Nitro Enclaves")
    vcpus = _size_vcpus(size)
    ratio = MEMORY_GIB_PER_VCPU.get(cls) if len(cls) == 1 else None
    memory_mib = vcpus * ratio * 1024 if vcpus is not None and ratio is not None else None
    return InstanceShape(name=name, arm64=arm64, vcpus=vcpus, memory_mib=memory_mib)


def _size_vcpus(size: str) -> int | None:
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    multiple = re.fullmatch(r"(\d+)xlarge", size)
    if multiple:
        return 4 * int(multiple[1])
    if size in {"nano", "micro", "small"}:
        return 1
    return None


def check_region(region: str | None) -> None:
    """Refuse a region outside the `aws` partition, when the CDK CLI knows the region at synth.

    The enclave's vsock-proxy and its allowlist name ``kms.<region>.amazonaws.com``; other partitions serve
    KMS under other domains (amazonaws.com.cn, ...). None (region unknown at synth) passes: the template
    itself refuses other partitions at deploy (infra/partition.py)."""
    if region and _OTHER_PARTITION_RE.fullmatch(region.strip()):
        raise SettingsError(
            f"region {region!r} is outside the 'aws' partition: the enclave reaches KMS only as "
            "kms.<region>.amazonaws.com, so China, GovCloud, isolated and sovereign-cloud regions are not "
            "supported (yet); deploy to a commercial region such as us-east-1 or eu-west-1"
        )


def check_architecture(shape: InstanceShape) -> None:
    """Refuse arm64 (Graviton) types: everything the build measures is x86_64."""
    if shape.arm64:
        raise SettingsError(
            f"instance_type {shape.name!r} is arm64 (Graviton), but the enclave image is x86_64 only: "
            "CodeBuild builds it on x86_64 with nitro-cli's x86_64 kernel blob, and the wheel hashes in "
            "app/enclave/requirements.txt are for x86_64; use an x86_64 type such as c5.xlarge, m5.xlarge "
            "or c6i.xlarge"
        )


def load_settings(get: Callable[[str], Any], *, region: str | None = None) -> Settings:
    """Build settings from a context getter (``app.node.try_get_context``); missing keys take DEFAULTS.

    ``region`` is the region the CDK CLI resolved for this synth (``CDK_DEFAULT_REGION``), or None."""

    def value(key: str) -> Any:
        raw = get(key)
        return DEFAULTS[key] if raw is None else raw

    check_region(region)
    instance = parse_instance_type(str(value("instance_type")).strip())
    check_architecture(instance)
    settings = Settings(
        instance=instance,
        enclave_cpu_count=_as_int("enclave_cpu_count", value("enclave_cpu_count")),
        enclave_memory_mib=_as_int("enclave_memory_mib", value("enclave_memory_mib")),
        enclave_cid=_as_int("enclave_cid", value("enclave_cid")),
        enclave_debug=_as_bool("enclave_debug", value("enclave_debug")),
        enclave_pcr0=_as_pcr0(value("enclave_pcr0")),
        key_alias=_as_alias(value("key_alias")),
        encryption_context=_as_context(value("encryption_context")),
        boot_timeout_minutes=_as_int("boot_timeout_minutes", value("boot_timeout_minutes")),
        log_retention_days=_as_int("log_retention_days", value("log_retention_days")),
        hosts=_as_int("hosts", value("hosts")),
        retire_previous=_as_bool("retire_previous", value("retire_previous")),
        nitro_cli_version=_as_nitro_cli_version(value("nitro_cli_version")),
        network=_as_network(value("network")),
    )
    _check_enclave_fits(settings)
    _check_ranges(settings)
    return settings


def _check_enclave_fits(s: Settings) -> None:
    cpus, shape = s.enclave_cpu_count, s.instance
    if cpus < 1:
        raise SettingsError(f"enclave_cpu_count must be at least 1, got {cpus}")
    if not shape.arm64 and cpus % 2:
        raise SettingsError(
            f"enclave_cpu_count {cpus} is odd: x86 enclaves take whole cores (2 vCPUs each) on {shape.name}"
        )
    if shape.vcpus is not None and cpus >= shape.vcpus:
        raise SettingsError(
            f"enclave_cpu_count {cpus} leaves no vCPU for the parent: {shape.name} has {shape.vcpus} vCPUs"
        )
    if s.enclave_memory_mib < MIN_ENCLAVE_MEMORY_MIB:
        raise SettingsError(
            f"enclave_memory_mib {s.enclave_memory_mib} is below {MIN_ENCLAVE_MEMORY_MIB} MiB "
            "(the enclave needs at least 4 x the EIF size)"
        )
    if shape.memory_mib is not None and s.enclave_memory_mib > shape.memory_mib - PARENT_RESERVED_MEMORY_MIB:
        raise SettingsError(
            f"enclave_memory_mib {s.enclave_memory_mib} is more than {shape.name} can give: it has "
            f"{shape.memory_mib} MiB and the parent keeps {PARENT_RESERVED_MEMORY_MIB} MiB"
        )


def _check_ranges(s: Settings) -> None:
    if s.enclave_cid in RESERVED_CIDS or not 0 < s.enclave_cid <= MAX_CID:
        raise SettingsError(f"enclave_cid {s.enclave_cid} is reserved or out of range: use 4..{MAX_CID}")
    if not MIN_BOOT_TIMEOUT_MINUTES <= s.boot_timeout_minutes <= MAX_BOOT_TIMEOUT_MINUTES:
        raise SettingsError(
            f"boot_timeout_minutes {s.boot_timeout_minutes} must be within "
            f"{MIN_BOOT_TIMEOUT_MINUTES}..{MAX_BOOT_TIMEOUT_MINUTES}: it is also the rolling update's "
            "PauseTime, and CloudFormation accepts at most PT1H there"
        )
    if not MIN_HOSTS <= s.hosts <= MAX_HOSTS:
        raise SettingsError(f"hosts {s.hosts} must be within {MIN_HOSTS}..{MAX_HOSTS}")
    if s.log_retention_days not in LOG_RETENTION_DAYS:
        raise SettingsError(
            f"log_retention_days {s.log_retention_days} is not one of {list(LOG_RETENTION_DAYS)}"
        )


def _as_int(key: str, raw: Any) -> int:
    if isinstance(raw, bool):
        raise SettingsError(f"{key} must be an integer, got {raw!r}")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {raw!r}") from None


def _as_bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off", ""}:
        return False
    raise SettingsError(f"{key} must be true or false, got {raw!r}")


def _as_pcr0(raw: Any) -> str:
    text = str(raw).strip().lower()
    if not text:
        return ""
    if not re.fullmatch(r"[0-9a-f]{96}", text):
        raise SettingsError(f"enclave_pcr0 must be 96 hex characters (SHA-384), got {raw!r}")
    if text == ZERO_PCR:
        raise SettingsError("enclave_pcr0 is all zeros (a debug-mode value): use enclave_debug=true instead")
    return text


def _as_nitro_cli_version(raw: Any) -> str:
    """X.Y.Z, the package version dnf installs (aws-nitro-enclaves-cli-X.Y.Z) and `nitro-cli --version`
    prints; "" leaves it to the repository. The build's kernel, init and nsm.ko come from this package."""
    text = str(raw).strip()
    if text and not enclave_build.NITRO_CLI_VERSION_RE.fullmatch(text):  # the build checks what it used
        raise SettingsError(f"nitro_cli_version must look like '1.3.1' (or be empty), got {raw!r}")
    return text


def _as_network(raw: Any) -> str:
    text = str(raw).strip().lower()
    if text not in NETWORK_MODES:
        raise SettingsError(f"network must be one of {list(NETWORK_MODES)}, got {raw!r}")
    return text


def _as_alias(raw: Any) -> str:
    text = str(raw).strip()
    if not re.fullmatch(r"alias/[a-zA-Z0-9/_-]{1,250}", text) or text.startswith("alias/aws/"):
        raise SettingsError(f"key_alias must look like 'alias/name' and not use 'alias/aws/', got {raw!r}")
    return text


def _as_context(raw: Any) -> Mapping[str, str]:
    parsed = raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            raise SettingsError(f"encryption_context must be a JSON object, got {raw!r}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise SettingsError(f"encryption_context must be a non-empty JSON object, got {raw!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise SettingsError(f"encryption_context keys and values must be strings, got {raw!r}")
    if "card_id" in parsed:
        raise SettingsError("encryption_context must not set 'card_id': each message adds its own")
    context = dict(sorted(parsed.items()))
    # The hosts read it back from demo.env, where anything outside the pattern stops every host at boot
    # (its config step): refused here, at synth, instead.
    if not demo_env_pattern("ENCRYPTION_CONTEXT").fullmatch(render_context(context)):
        raise SettingsError(
            "encryption_context must be at most 16 pairs, keys of 1-64 and values of 0-256 characters of "
            f"A-Z a-z 0-9 _ . : / - (no space, quote, backslash or non-ASCII letter), got {raw!r}"
        )
    return context


def render_context(context: Mapping[str, str]) -> str:
    """The encryption context as demo.env carries it: compact JSON, in the given order."""
    return json.dumps(dict(context), separators=(",", ":"))


def demo_env_pattern(key: str) -> re.Pattern[str]:
    """The exact form host/demo-env.patterns gives `key` (the one home of demo.env's patterns)."""
    for line in DEMO_ENV_PATTERNS.read_text(encoding="utf-8").splitlines():
        name, tab, pattern = line.partition("\t")
        if tab and not line.startswith("#") and name == key:
            return re.compile(pattern)
    raise KeyError(f"{DEMO_ENV_PATTERNS.name} has no pattern for {key}")

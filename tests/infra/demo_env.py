"""demo.env as data, for tests: the patterns of host/demo-env.patterns, a complete file of values in their
real forms, and the host's own reader (host/demo-env.sh) run under bash."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from infra.constants import HOST_FILES_DIR

PATTERNS_FILE = HOST_FILES_DIR / "demo-env.patterns"
READER = HOST_FILES_DIR / "demo-env.sh"
PLACEHOLDER = re.compile(r"(ref|getatt)-")  # tests.infra.cfn's stand-ins for unresolved Ref/GetAtt

VALID: Mapping[str, str] = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CARDS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/NitroEnclaveDemo-Cards-1A2B",
    "RESULTS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/NitroEnclaveDemo-Results-3C4D",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/NitroEnclaveDemo-Dlq-5E6F",
    "KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "ENCRYPTION_CONTEXT": '{"app":"nitro-enclave-demo"}',
    "ENCLAVE_CID": "16",
    "ENCLAVE_PORT": "5000",
    "ENCLAVE_URL": "vsock://16:5000",
    "ENCLAVE_CPU_COUNT": "2",
    "ENCLAVE_MEMORY_MIB": "3072",
    "ENCLAVE_DEBUG": "false",
    "ENCLAVE_EIF": "/opt/nitro-enclave-demo/enclave.eif",
    "EIF_BUCKET": "nitroenclavedemo-enclaveimageeifs00c57115-1x2y3z",
    "EIF_KEY": "eif/" + "ab" * 32 + ".eif",
    "EIF_VERSION": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",
    "EXPECTED_PCR0": "5e" * 48,
    "BUNDLE_KEY": "bundle/" + "cd" * 32 + ".tar.gz",
    "BUNDLE_VERSION": "bundle.Version-1",
    "BUNDLE_SHA256": "cd" * 32,
    "STACK_NAME": "NitroEnclaveDemo",
    "SIGNAL_RESOURCE": "EnclaveHostGroup",
    "MEASUREMENTS_PARAMETER": "/nitro-enclave-demo/NitroEnclaveDemo/measurements",
    "PINNED_PCR0_PARAMETER": "/nitro-enclave-demo/NitroEnclaveDemo/pinned-pcr0",
    "CW_LOG_GROUP": "NitroEnclaveDemo-ObservabilityLogGroup43951639-1A2B3C",
    "ENCLAVE_LOG_LISTEN_URL": "vsock://any:5005",
    "VSOCK_PROXY_WORKERS": "32",
}


def patterns(path: Path = PATTERNS_FILE) -> dict[str, str]:
    """KEY -> pattern, in file order; a key given twice is an error in the file itself."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        key, pattern = line.split("\t", 1)
        if key in found:
            raise ValueError(f"{path}: {key} twice")
        found[key] = pattern
    return found


def render(values: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def realistic(text: str) -> str:
    """A rendered demo.env with every unresolved placeholder value replaced by a value of its real form."""
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        placeholder = sep and not line.startswith("#") and PLACEHOLDER.search(value)
        lines.append(f"{key}={VALID[key]}" if placeholder else line)
    return "\n".join(lines) + "\n"


def systemd_reads_literally(value: str) -> bool:
    """True when systemd's EnvironmentFile= parser reads `KEY=value` as exactly `value`: its value state
    machine (src/basic/env-file.c, parse_env_file_internal) treats a leading quote, any backslash,
    leading/trailing whitespace and a newline specially, and nothing else."""
    return (
        value[:1] not in ("'", '"')
        and "\\" not in value
        and "\n" not in value
        and value == value.strip()
        and value != ""
    )


def read_with_bash(env_file: Path, patterns_file: Path = PATTERNS_FILE) -> subprocess.CompletedProcess[str]:
    """The host's reader: exit 0 and `KEY=VALUE` lines of what it set, or exit 1 and `KEY: error`."""
    script = (
        f'. "{READER}"\n'
        f'if demo_env_read "{env_file}" "{patterns_file}"; then env | grep -E "^[A-Z][A-Z0-9_]*=" | sort\n'
        'else printf "%s: %s\\n" "$DEMO_ENV_KEY" "$DEMO_ENV_ERROR"; exit 1; fi\n'
    )
    return subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )

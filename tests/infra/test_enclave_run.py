"""enclave-run.sh (behind the enclave unit) run with stub commands: it refuses an EIF whose describe-eif
output does not report `"CheckCRC": true` or whose PCR0 is not the pin, with exit 3 (the unit's
RestartPreventExitStatus), before `nitro-cli run-enclave`.

The stub nitro-cli prints describe-eif's JSON as EifDescribeInfo serializes it ("Measurements" and
"CheckCRC", src/common/json_output.rs of aws/aws-nitro-enclaves-cli) and records every call; `sleep` is a
stub so the readiness loop (the stub has no enclave to answer a ping) ends at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.constants import HOST_FILES_DIR

PIN = "5e" * 48
EXIT_WRONG_IMAGE = 3

NITRO_CLI = r"""#!/usr/bin/env python3
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\n")
if sys.argv[1] == "describe-eif" and os.environ.get("DESCRIBE_FAILS"):
    sys.exit(19)  # e.g. E19, the file could not be read
if sys.argv[1] == "describe-eif":
    crc = json.loads(os.environ["EIF_CRC"])
    print(json.dumps({"EifVersion": 4, "Measurements": {"PCR0": os.environ["EIF_PCR0"]}, "IsSigned": False,
                      **({} if crc is None else {"CheckCRC": crc})}, indent=2))
"""


def _run(
    tmp_path: Path, *, crc: bool | None, pcr0: str = PIN, describe_fails: bool = False
) -> tuple[int, str, list[str]]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (("nitro-cli", NITRO_CLI), ("sleep", "#!/bin/sh\nexit 0\n")):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    calls = tmp_path / "calls"
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "CALLS": str(calls),
        "EIF_CRC": json.dumps(crc),
        "EIF_PCR0": pcr0,
        "ENCLAVE_EIF": str(tmp_path / "enclave.eif"),
        "ENCLAVE_CPU_COUNT": "2",
        "ENCLAVE_MEMORY_MIB": "3072",
        "ENCLAVE_CID": "16",
        "ENCLAVE_URL": "vsock://16:5000",
        "EXPECTED_PCR0": PIN.upper(),
        **({"DESCRIBE_FAILS": "1"} if describe_fails else {}),
    }
    done = subprocess.run(
        ["/bin/bash", str(HOST_FILES_DIR / "enclave-run.sh")],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    return done.returncode, done.stderr, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("crc", [False, None])
def test_an_eif_without_a_passing_crc_check_is_refused(tmp_path: Path, crc: bool | None) -> None:
    code, err, calls = _run(tmp_path, crc=crc)
    assert code == EXIT_WRONG_IMAGE
    assert "nitro-cli describe-eif does not report CheckCRC true (damaged or truncated)" in err
    assert not [c for c in calls if c.startswith("run-enclave")]


def test_a_wrong_pcr0_is_refused_at_every_start(tmp_path: Path) -> None:
    code, err, calls = _run(tmp_path, crc=True, pcr0="7f" * 48)
    assert code == EXIT_WRONG_IMAGE
    assert f"its PCR0 {'7f' * 48} is not the pinned {PIN.upper()}" in err
    assert not [c for c in calls if c.startswith("run-enclave")]


def test_an_intact_pinned_eif_is_started(tmp_path: Path) -> None:
    _, err, calls = _run(tmp_path, crc=True)
    (started,) = [c for c in calls if c.startswith("run-enclave")]
    assert f"--eif-path {tmp_path / 'enclave.eif'}" in started
    assert "--enclave-cid 16" in started
    assert "does not answer a ping" in err  # no enclave behind the stub: the readiness loop gives up


def test_a_failing_describe_eif_is_named_and_left_to_systemd_to_retry(tmp_path: Path) -> None:
    code, err, calls = _run(tmp_path, crc=True, describe_fails=True)
    assert code == 1  # not EXIT_WRONG_IMAGE: the tool failed, not the image
    assert "nitro-cli describe-eif failed (exit 19)" in err
    assert not [c for c in calls if c.startswith("run-enclave")]

"""nitro-cli stand-in: build-enclave's E51 and streams, run-enclave's checks, the software enclave, JSON."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.local.software_nsm import ATTESTATION_ROOT_FILE, LocalPki, measure_enclave_sources
from app.ops import enclave_checks
from app.shared import vsock_tcp
from rehearsal import blockers
from rehearsal.standins.enclaves import CONSOLE_DIR, CONSOLE_NAME
from rehearsal.standins.nitro_init import CHILD_FAILED_LINE
from tests.rehearsal.standin_helpers import (
    REPO_ROOT,
    build_enclave_image,
    copy_repo_app,
    docker_daemon,
    install_packages,
    make_root,
    needs_linux,
    run,
    short_tmp,
    wait_for,
)

pytestmark = needs_linux

OVER_TCP = {vsock_tcp.ENV_VSOCK_OVER_TCP: "3"}
BUILD = ("build-enclave", "--docker-uri", "nitro-enclave-demo-enclave:latest", "--output-file")


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """A root with the bootstrap's packages, the allocator's pool, the PKI and the enclave image built."""
    with short_tmp() as scratch:
        root = make_root(scratch)
        install_packages(root)
        (root / "dev/nitro_enclaves").touch()
        (root / "etc/nitro_enclaves/allocator.yaml").write_text("---\nmemory_mib: 3072\ncpu_count: 2\n")
        assert run(root, "/usr/bin/nitro-enclaves-allocator").returncode == 0
        LocalPki.generate().save(root / "opt/rehearsal/pki")
        with docker_daemon(root):
            build_enclave_image(root, copy_repo_app(scratch / "app"))
            yield root


def eif(root: Path) -> Path:
    path = root / "opt/nitro-enclave-demo/enclave.eif"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        done = run(root, "/usr/bin/nitro-cli", *BUILD, str(path), env={"HOME": str(root / "root")})
        assert done.returncode == 0, done.stderr
    return path


def test_build_without_home_or_artifacts_exits_e51_as_under_cloud_final(built: Path) -> None:
    output = built / "no-home.eif"
    done = run(built, "/usr/bin/nitro-cli", *BUILD, str(output), drop=("HOME", "NITRO_CLI_ARTIFACTS"))
    assert done.returncode == 51
    assert "[ E51 ] Artifacts path environment variable not set" in done.stderr
    assert done.stdout == ""
    assert output.stat().st_size == 0  # nitro-cli creates the output file before it asks for the path


def test_build_prints_only_the_measurements_on_stdout_and_pcr0_is_the_software_measurement(
    built: Path,
) -> None:
    output = built / "built.eif"
    artifacts = {"NITRO_CLI_ARTIFACTS": str(built / "art")}
    done = run(built, "/usr/bin/nitro-cli", *BUILD, str(output), env=artifacts, drop=("HOME",))
    assert done.returncode == 0, done.stderr
    measurements = json.loads(done.stdout)["Measurements"]
    assert set(measurements) == {"HashAlgorithm", "PCR0", "PCR1", "PCR2"}
    assert measurements["PCR0"] == measure_enclave_sources(REPO_ROOT).hex()
    assert "Start building the Enclave Image..." in done.stderr
    assert "Enclave Image successfully created." in done.stderr
    assert (built / "art").is_dir()


def test_describe_eif_reads_back_the_build_measurements(built: Path) -> None:
    done = run(built, "/usr/bin/nitro-cli", "describe-eif", "--eif-path", str(eif(built)))
    described = json.loads(done.stdout)
    assert described["Measurements"]["PCR0"] == measure_enclave_sources(REPO_ROOT).hex()
    assert described["CheckCRC"] is True
    assert described["IsSigned"] is False


def test_build_without_the_devel_packages_blobs_fails_e19(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    install_packages(root, "aws-nitro-enclaves-cli", "docker")
    done = run(root, "/usr/bin/nitro-cli", *BUILD, str(tmp_path / "x.eif"), env={"HOME": str(tmp_path)})
    assert done.returncode == 19
    assert "Could not open kernel command line file" in done.stderr


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--cpu-count", "1", "--memory", "3072", "--enclave-cid", "16"), 33, "full CPU cores"),
        (("--cpu-count", "4", "--memory", "3072", "--enclave-cid", "16"), 22, "Insufficient CPUs"),
        (("--cpu-count", "2", "--memory", "4096", "--enclave-cid", "16"), 27, "hugepage memory"),
        (("--cpu-count", "2", "--memory", "3072", "--enclave-cid", "3"), 3, "CID of the parent VM"),
        (("--cpu-count", "2", "--memory", "3072", "--enclave-cid", "2"), 3, "well-known CID"),
    ],
)
def test_run_enclave_refuses_what_nitro_cli_refuses(
    built: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    done = run(built, "/usr/bin/nitro-cli", "run-enclave", "--eif-path", str(eif(built)), *args, env=OVER_TCP)
    assert done.returncode == code, done.stderr
    assert f"[ E{code:02d} ]" in done.stderr
    assert says in done.stderr


def test_memory_below_four_times_the_eif_is_e26(built: Path) -> None:
    big = built / "big-context"
    big.mkdir()
    (big / "blob.bin").write_bytes(random.randbytes(700 * 1024))
    for package in ("app/enclave", "app/shared"):  # the stand-in measures PCR0 over the image's app package
        (big / package).mkdir(parents=True)
        (big / package / "__init__.py").write_text("")
    (big / "Dockerfile").write_text(
        "FROM scratch\nWORKDIR /opt/enclave\nCOPY blob.bin ./blob.bin\nCOPY app/ ./app/\n"
        'CMD ["/opt/enclave/blob.bin"]\n'
    )
    build_enclave_image(built, big, big / "Dockerfile")
    output = built / "big.eif"
    assert run(built, "/usr/bin/nitro-cli", *BUILD, str(output), env={"HOME": str(built)}).returncode == 0
    args = ("--eif-path", str(output), "--cpu-count", "2", "--memory", "2", "--enclave-cid", "16")
    done = run(built, "/usr/bin/nitro-cli", "run-enclave", *args, env=OVER_TCP)
    assert done.returncode == 26
    assert "the EIF needs at least 4 MB" in done.stderr
    build_enclave_image(built, copy_repo_app(built / "app-again"))  # the module's image again


def test_run_starts_the_eifs_enclave_and_it_attests_the_built_pcr0(built: Path) -> None:
    cid = str(random.randint(100, 250))
    pcr0 = measure_enclave_sources(REPO_ROOT).hex()
    args = (
        "--enclave-name",
        "nitro-enclave-demo",
        "--cpu-count",
        "2",
        "--memory",
        "3072",
        "--enclave-cid",
        cid,
    )
    started = run(
        built, "/usr/bin/nitro-cli", "run-enclave", "--eif-path", str(eif(built)), *args, env=OVER_TCP
    )
    assert started.returncode == 0, started.stderr
    try:
        info = json.loads(started.stdout)
        shape = (info["EnclaveCID"], info["NumberOfCPUs"], info["CPUIDs"], info["MemoryMiB"])
        assert shape == (int(cid), 2, [1, 3], 3072)
        parent = {**OVER_TCP, "ENCLAVE_URL": f"vsock://{cid}:5000"}
        # run-enclave returns at the init's heartbeat, before the image's command listens (as on Nitro)
        wait_for(lambda: _parent(parent, "ping").returncode == 0, "the enclave's answer to a ping")
        root_pem = built / "opt/rehearsal/pki" / ATTESTATION_ROOT_FILE
        attest = _parent(parent, "attest", "--root-pem", str(root_pem), "--pinned-pcr0", pcr0)
        assert attest.returncode == 0, attest.stdout + attest.stderr + _console(built, info["EnclaveID"])
        assert "MATCH" in attest.stdout
        described = run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout
        assert enclave_checks.check_enclave(described, int(cid)).status.name == "OK"
        assert json.loads(described)[0]["Measurements"]["PCR0"] == pcr0
        second = (
            "--eif-path",
            str(eif(built)),
            "--cpu-count",
            "2",
            "--memory",
            "1024",
            "--enclave-cid",
            "17",
        )
        again = run(built, "/usr/bin/nitro-cli", "run-enclave", *second, env=OVER_TCP)
        assert again.returncode == 22  # the pool's CPUs are taken
    finally:
        stopped = run(
            built, "/usr/bin/nitro-cli", "terminate-enclave", "--enclave-name", "nitro-enclave-demo"
        )
    assert json.loads(stopped.stdout)["Terminated"] is True
    assert json.loads(run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout) == []


def _console(root: Path, enclave_id: str) -> str:
    return (root / CONSOLE_DIR.lstrip("/") / CONSOLE_NAME.format(enclave_id=enclave_id)).read_text()


def _parent(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app.parent` as the relay's venv runs it, without any AWS_ variable of this machine."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "app.parent", *args]
    return subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False, cwd=REPO_ROOT
    )


ENCLAVE_RUN = REPO_ROOT / "infra/constructs/host/enclave-run.sh"


def _jq_filter(pattern: str) -> str:
    found = re.search(pattern, ENCLAVE_RUN.read_text())
    assert found is not None, pattern
    return found[1]


def _jq(filter_text: str, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("jq") is None:
        pytest.skip("jq is not installed here (the Debian root and AL2023 have it)")
    return subprocess.run(
        ["jq", "-e", *args, filter_text], input=text, capture_output=True, text=True, check=False
    )


def test_enclave_run_sh_reads_the_pcr0_from_describe_eif(built: Path) -> None:
    described = run(built, "/usr/bin/nitro-cli", "describe-eif", "--eif-path", str(eif(built))).stdout
    done = _jq(_jq_filter(r"jq -er '([^']+)'"), described, "-r")
    assert done.stdout.strip() == measure_enclave_sources(REPO_ROOT).hex()


def test_a_debug_enclave_is_flagged_and_a_dead_one_leaves_describe_enclaves(built: Path) -> None:
    args = ("--enclave-name", "nitro-enclave-demo", "--cpu-count", "2", "--memory", "3072", "--debug-mode")
    started = run(
        built, "/usr/bin/nitro-cli", "run-enclave", "--eif-path", str(eif(built)), *args, env=OVER_TCP
    )
    assert started.returncode == 0, started.stderr
    running_filter = _jq_filter(r"jq -e --arg name \"\$NAME\" '([^']+)'")
    try:
        described = run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout
        assert json.loads(described)[0]["Flags"] == "DEBUG_MODE"
        assert enclave_checks.check_enclave(described, None).status.name == "WARN"
        assert _jq(running_filter, described, "--arg", "name", "nitro-enclave-demo").returncode == 0
    finally:
        os.killpg(json.loads(started.stdout)["ProcessID"], signal.SIGKILL)  # the enclave dies on its own
    wait_for(
        lambda: run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout.strip() == "[]", "its record"
    )
    gone = run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout
    assert (
        _jq(running_filter, gone, "--arg", "name", "nitro-enclave-demo").returncode != 0
    )  # enclave-run.sh exits


@pytest.mark.parametrize(
    ("revert", "says"),
    [
        (blockers.enclave_cmd_bare_interpreter, "execvpe: python: No such file or directory"),
        (blockers.enclave_cmd_workdir, "No module named 'app'"),
    ],
)
def test_an_image_whose_cmd_cannot_start_under_the_init_ends_its_enclave(
    built: Path, revert: Callable[[str], str], says: str
) -> None:
    """run-enclave succeeds (the init's heartbeat comes first), then the Cmd fails, the enclave ends and its
    console says why, as on Nitro (aws-nitro-enclaves-cli#388)."""
    context = copy_repo_app(built / f"context-{revert.__name__}")
    recipe = context / "enclave/Dockerfile"
    recipe.write_text(revert(recipe.read_text()))
    build_enclave_image(built, context)
    output = built / f"{revert.__name__}.eif"
    assert run(built, "/usr/bin/nitro-cli", *BUILD, str(output), env={"HOME": str(built)}).returncode == 0
    args = ("--eif-path", str(output), "--cpu-count", "2", "--memory", "3072", "--enclave-cid", "16")
    started = run(built, "/usr/bin/nitro-cli", "run-enclave", *args, env=OVER_TCP)
    assert started.returncode == 0, started.stderr
    enclave_id = json.loads(started.stdout)["EnclaveID"]
    wait_for(
        lambda: run(built, "/usr/bin/nitro-cli", "describe-enclaves").stdout.strip() == "[]",
        "the enclave's end",
    )
    console = built / CONSOLE_DIR.lstrip("/") / CONSOLE_NAME.format(enclave_id=enclave_id)
    text = console.read_text()
    assert says in text
    assert CHILD_FAILED_LINE in text
    build_enclave_image(built, copy_repo_app(built / f"app-after-{revert.__name__}"))  # the module's image

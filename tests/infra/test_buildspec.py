"""infra/build/buildspec.yml: its structure against the buildspec reference (version 0.2), shellcheck on each
command as the script CodeBuild makes of it, and its phases run with bash against stand-ins for dnf,
nitro-cli, aws and build-eif.sh by the rehearsal's CodeBuild agent (rehearsal/standins/codebuild_agent.py, the
one model of how CodeBuild runs commands; tests/infra/buildspec_runner.py only adapts it to a directory here),
and once more carrying exported variables and the directory only, the narrowest reading of the documentation
that the buildspec relies on (docs/infra.md, "The buildspec")."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from infra.build import context
from infra.build.handler.enclave_build import EXPORTED_VARIABLES, build_data
from infra.constants import REPO_ROOT
from infra.constructs.enclave_image import BUILDSPEC, load_buildspec
from rehearsal import buildspec
from tests.infra import buildspec_runner
from tests.infra.conftest import Synth

SPEC = load_buildspec()
BUCKET = "eif-bucket-123"
PREVIOUS = "EnclaveImageProject-abc:99999999-8888-7777-6666-555555555555"
SOURCE_HASH = "0123456789abcdef" * 4
EIF_BYTES = b"not really an EIF, but bytes the build hashes and uploads\n" * 100
PCRS = {"PCR0": "AB" * 48, "PCR1": "CD" * 48, "PCR2": "EF" * 48}
# What a build with the stubs' answers exports: lower-case PCRs, the content-addressed key, S3's version id,
# StartBuild's overrides echoed back and the Nitro CLI version the stub reports.
EXPORTED = {
    "PCR0": "ab" * 48,
    "PCR1": "cd" * 48,
    "PCR2": "ef" * 48,
    "EIF_KEY": f"eif/{hashlib.sha256(EIF_BYTES).hexdigest()}.eif",
    "EIF_VERSION": "v1.Zx+/version",
    "PREVIOUS_BUILD_ID": PREVIOUS,
    "SOURCE_HASH": SOURCE_HASH,
    "NITRO_CLI_VERSION": "1.4.2",
}
# The host bundle's exports, whose SHA-256 depends on the source tree: checked by their own tests.
BUNDLE_EXPORTS = ("BUNDLE_KEY", "BUNDLE_VERSION", "BUNDLE_SHA256")


def eif_exports(exported: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in exported.items() if k not in BUNDLE_EXPORTS}


# Stand-ins. build-eif.sh's interface (helper "repro", docs/infra.md): `build-eif.sh <out-dir>` writes
# <out-dir>/enclave.eif and <out-dir>/measurements.json, nitro-cli build-enclave's stdout.
FAKE_BUILD_EIF = """#!/usr/bin/env bash
set -euo pipefail
[[ ${FAKE_BUILD_EXIT:-0} == 0 ]] || exit "$FAKE_BUILD_EXIT"
cp "$FAKE_EIF" "$1/enclave.eif"
cp "$FAKE_MEASUREMENTS" "$1/measurements.json"
echo "${FAKE_RECORDED_VERSION-1.4.2}" > "$1/nitro-cli-version"
"""
FAKE_DNF = """#!/usr/bin/env bash
echo "dnf $*" >> "$CALLS"
exit "${FAKE_DNF_EXIT:-0}"
"""
# `nitro-cli --version` as clap prints it (aws/aws-nitro-enclaves-cli src/main.rs); build-enclave as
# build_from_docker does: the EIF to --output-file, only the measurements JSON on stdout (src/lib.rs).
FAKE_NITRO_CLI = """#!/usr/bin/env bash
echo "nitro-cli $*" >> "$CALLS"
if [[ $1 == --version ]]; then echo "Nitro CLI 1.4.2"; exit 0; fi
out=""
while [[ $# -gt 0 ]]; do [[ $1 == --output-file ]] && out="$2"; shift; done
cp "$FAKE_EIF" "$out"
cat "$FAKE_MEASUREMENTS"
"""
# `docker version --format` as build-eif.sh asks it: the daemon of CodeBuild's AL2023 standard 5.0 image,
# Docker 28.5.2, minimum API 1.24.
FAKE_DOCKER = """#!/usr/bin/env bash
echo "docker $*" >> "$CALLS"
if [[ $1 == version && $2 == --format ]]; then echo "28.5.2 1.24"; exit 0; fi
if [[ $1 == build ]]; then cat > "$CALLS.context.tar"; fi
"""
# The aws CLI stand-in checks put-object's checksum as S3 does (a mismatch is refused) and prints
# VersionId the way `--query VersionId --output text` does (None when the bucket is unversioned).
FAKE_AWS = f"""#!{sys.executable}
import base64, hashlib, json, os, sys
args = sys.argv[1:]
with open(os.environ["CALLS"], "a") as calls:
    calls.write("aws " + json.dumps(args) + "\\n")
assert args[:2] == ["s3api", "put-object"], args
opts = dict(zip(args[2::2], args[3::2]))
body = open(opts["--body"], "rb").read()
if base64.b64encode(hashlib.sha256(body).digest()).decode() != opts["--checksum-sha256"]:
    sys.exit("BadDigest: the checksum does not match the body")
print(os.environ.get("FAKE_VERSION_ID", "v1.Zx+/version"))
"""


def write_executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def run_build(
    tmp_path: Path,
    source: Path | None = None,
    project: dict[str, str] | None = None,
    carry_unexported: bool = True,
    **overrides: str,
) -> tuple[buildspec_runner.Outcome, list[str]]:
    """The buildspec as CodeBuild runs it, over `source` (the unzipped code asset) when given, else over a
    tree whose build-eif.sh is a stand-in."""
    stubs = tmp_path / "bin"
    for name, text in (
        ("dnf", FAKE_DNF),
        ("nitro-cli", FAKE_NITRO_CLI),
        ("docker", FAKE_DOCKER),
        ("aws", FAKE_AWS),
    ):
        write_executable(stubs / name, text)
    if source is None:
        source = tmp_path / "src"
        write_executable(source / "infra/build/build-eif.sh", FAKE_BUILD_EIF)
    (tmp_path / "enclave.eif").write_bytes(EIF_BYTES)
    measurements = tmp_path / "measurements.json"
    measurements.write_text(
        overrides.pop(
            "MEASUREMENTS", json.dumps({"Measurements": {"HashAlgorithm": "Sha384 { ... }", **PCRS}})
        )
    )
    base = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CALLS": str(tmp_path / "calls"),
        "FAKE_EIF": str(tmp_path / "enclave.eif"),
        "FAKE_MEASUREMENTS": str(measurements),
        **overrides,
    }
    project = {"EIF_BUCKET": BUCKET, "PREVIOUS_BUILD_ID": "none", "SOURCE_HASH": "none", **(project or {})}
    start = {"PREVIOUS_BUILD_ID": PREVIOUS, "SOURCE_HASH": SOURCE_HASH}
    outcome = buildspec_runner.run(
        BUILDSPEC.read_text(encoding="utf-8"),
        source_dir=source,
        scratch=tmp_path / "scratch",
        base_env=base,
        project=project,
        start=start,
        variables={"OUT": str(tmp_path / "out")},
        carry_unexported=carry_unexported,
    )
    calls_file = tmp_path / "calls"
    return outcome, calls_file.read_text().splitlines() if calls_file.exists() else []


def commands() -> list[tuple[str, str]]:
    return [(phase, c) for phase, body in SPEC["phases"].items() for c in body["commands"]]


def test_the_buildspec_has_the_shape_the_reference_allows() -> None:
    assert set(SPEC) <= {"version", "run-as", "env", "phases", "artifacts", "reports", "cache", "proxy"}
    assert SPEC["version"] == 0.2  # YAML reads the reference's `version: 0.2` as this number
    assert set(SPEC["env"]) <= {
        "shell",
        "variables",
        "parameter-store",
        "exported-variables",
        "secrets-manager",
    }
    assert SPEC["env"]["shell"] == "bash"  # Linux allows bash or /bin/sh
    assert list(SPEC["phases"]) == [p for p in buildspec.PHASE_NAMES if p in SPEC["phases"]]
    buildspec.parse(BUILDSPEC.read_text(encoding="utf-8"))  # nothing the rehearsal's CodeBuild refuses
    for phase, body in SPEC["phases"].items():
        assert set(body) <= {"run-as", "on-failure", "runtime-versions", "commands", "finally"}, phase
        assert body["commands"], phase
        assert all(isinstance(c, str) for c in body["commands"]), phase


def test_it_exports_exactly_what_the_handler_reads() -> None:
    exported = SPEC["env"]["exported-variables"]
    assert tuple(exported) == EXPORTED_VARIABLES
    # The reference: names starting with AWS_ cannot be exported; CODEBUILD_ is reserved.
    assert not [n for n in exported if n.startswith(("AWS_", "CODEBUILD_"))]


def test_every_multi_line_command_stops_at_its_first_failure() -> None:
    # Each item is its own script without -e: a later line's success would hide an earlier failure.
    for phase, command in commands():
        if "\n" in command.strip():
            assert command.startswith("set -euo pipefail\n"), (phase, command)


@pytest.mark.parametrize(("phase", "command"), commands())
def test_shellcheck_passes_on_each_command_as_its_own_script(phase: str, command: str) -> None:
    script = f"#!/usr/bin/env bash\n# {BUILDSPEC.name}, phase {phase}\n{command}\n"
    result = subprocess.run(
        ["shellcheck", "--shell=bash", "--severity=style", "-"],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_build_exports_lower_case_measurements_the_key_and_the_version(tmp_path: Path) -> None:
    outcome, _ = run_build(tmp_path)
    assert outcome.succeeded, outcome.output
    assert eif_exports(outcome.exported) == EXPORTED


def puts_of(calls: list[str], prefix: str) -> list[list[str]]:
    puts = [json.loads(c.removeprefix("aws ")) for c in calls if c.startswith("aws ")]
    return [p for p in puts if dict(zip(p[2::2], p[3::2], strict=True))["--key"].startswith(prefix)]


def test_the_eif_is_put_once_under_its_hash_with_s3_checking_the_checksum(tmp_path: Path) -> None:
    outcome, calls = run_build(tmp_path)
    assert outcome.succeeded, outcome.output
    assert len([c for c in calls if c.startswith("aws ")]) == 2  # the EIF and the host bundle
    puts = puts_of(calls, "eif/")
    assert len(puts) == 1
    opts = dict(zip(puts[0][2::2], puts[0][3::2], strict=True))
    assert opts == {
        "--bucket": BUCKET,
        "--key": outcome.exported["EIF_KEY"],
        "--body": str(tmp_path / "out/enclave.eif"),
        "--checksum-sha256": base64.b64encode(hashlib.sha256(EIF_BYTES).digest()).decode(),
        "--query": "VersionId",
        "--output": "text",
    }


def test_the_host_bundle_is_the_source_tree_put_once_under_its_hash(tmp_path: Path) -> None:
    source = tmp_path / "src"
    write_executable(source / "infra/build/build-eif.sh", FAKE_BUILD_EIF)
    (source / "app").mkdir()
    (source / "app/relay.py").write_text("print('the relay')\n")
    outcome, calls = run_build(tmp_path, source=source)
    assert outcome.succeeded, outcome.output
    body = (tmp_path / "out/host-bundle.tar.gz").read_bytes()
    sha256 = hashlib.sha256(body).hexdigest()
    assert {k: outcome.exported[k] for k in BUNDLE_EXPORTS} == {
        "BUNDLE_KEY": f"bundle/{sha256}.tar.gz",
        "BUNDLE_VERSION": "v1.Zx+/version",
        "BUNDLE_SHA256": sha256,
    }
    (put,) = puts_of(calls, "bundle/")
    opts = dict(zip(put[2::2], put[3::2], strict=True))
    assert opts["--checksum-sha256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = set(archive.getnames())
        relay = archive.extractfile("./app/relay.py")
        assert relay is not None
        assert relay.read() == b"print('the relay')\n"
    assert "./infra/build/build-eif.sh" in names
    assert not [n for n in names if "enclave.eif" in n or "measurements" in n]  # taken before the build
    variables = [{"name": k, "value": v} for k, v in outcome.exported.items()]
    build = {"id": "p:1", "buildStatus": "SUCCEEDED", "exportedEnvironmentVariables": variables}
    props = {"ProjectName": "EnclaveImageProject-abc", "RetirePrevious": "true", "ExpectedPcr0": ""}
    assert build_data(None, build, props)["BundleSha256"] == sha256


def test_the_same_source_gives_the_same_bundle(tmp_path: Path) -> None:
    # Sorted names, fixed owner and time, gzip without name or time: a rebuild of the same code is the same
    # object (a host replaced later would get the same bytes even from a new build of the same source).
    shas = []
    for attempt in ("one", "two"):
        (tmp_path / attempt).mkdir()
        outcome, _ = run_build(tmp_path / attempt)
        assert outcome.succeeded, outcome.output
        shas.append(outcome.exported["BUNDLE_SHA256"])
    assert shas[0] == shas[1]


def test_the_install_phase_installs_the_nitro_cli(tmp_path: Path) -> None:
    _, calls = run_build(tmp_path)
    assert calls[0] == "dnf install -y aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel"
    assert calls[1:3] == ["nitro-cli --version", "docker version"]


def test_a_pinned_nitro_cli_version_is_what_dnf_installs(tmp_path: Path) -> None:
    _, calls = run_build(tmp_path, project={"NITRO_CLI_VERSION": "1.4.2"})
    assert calls[0] == "dnf install -y aws-nitro-enclaves-cli-1.4.2 aws-nitro-enclaves-cli-devel-1.4.2"


@pytest.mark.parametrize("recorded", ["", "1.4", "Nitro CLI 1.4.2"])
def test_a_recorded_version_that_is_not_x_y_z_fails_before_any_upload(tmp_path: Path, recorded: str) -> None:
    outcome, calls = run_build(tmp_path, FAKE_RECORDED_VERSION=recorded)
    assert outcome.phases["build"] is False
    assert "not X.Y.Z" in outcome.output
    assert not [c for c in calls if c.startswith("aws ")]


def test_the_handler_accepts_what_the_build_exports(tmp_path: Path) -> None:
    outcome, _ = run_build(tmp_path)
    variables = [{"name": k, "value": v} for k, v in outcome.exported.items()]
    build: dict[str, Any] = {
        "id": "p:1",
        "buildStatus": "SUCCEEDED",
        "exportedEnvironmentVariables": variables,
    }
    props = {"ProjectName": "EnclaveImageProject-abc", "RetirePrevious": "true", "ExpectedPcr0": ""}
    assert build_data(None, build, props)["Pcr0"] == "ab" * 48


def test_a_failed_install_runs_no_later_phase(tmp_path: Path) -> None:
    outcome, calls = run_build(tmp_path, FAKE_DNF_EXIT="1")
    assert outcome.phases == {"install": False}
    assert not [c for c in calls if c.startswith("aws ")]


def test_a_failed_image_build_uploads_nothing(tmp_path: Path) -> None:
    outcome, calls = run_build(tmp_path, FAKE_BUILD_EXIT="3")
    assert outcome.phases == {"install": True, "build": False}
    assert "Error while executing command: bash infra/build/build-eif.sh" in outcome.failure
    assert "exit status 3" in outcome.failure
    assert not [c for c in calls if c.startswith("aws ")]


@pytest.mark.parametrize(
    "measurements",
    [
        json.dumps({"Measurements": {"PCR0": "ab" * 48, "PCR1": "cd" * 48}}),  # no PCR2
        json.dumps({"Measurements": {**PCRS, "PCR1": "xyz"}}),
        "nitro-cli printed an error instead of JSON",
    ],
)
def test_malformed_measurements_fail_the_build_before_any_upload(tmp_path: Path, measurements: str) -> None:
    outcome, calls = run_build(tmp_path, MEASUREMENTS=measurements)
    assert outcome.phases["build"] is False
    assert not [c for c in calls if c.startswith("aws ")]


def test_an_unversioned_upload_fails_the_build(tmp_path: Path) -> None:
    outcome, _ = run_build(tmp_path, FAKE_VERSION_ID="None")
    assert outcome.phases["build"] is False
    assert "is versioning on?" in outcome.output


@pytest.fixture(scope="module")
def code_asset(default: Synth, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthesized stack's code asset as CodeBuild unzips it: every file 0644 (a zip asset may lose the
    executable bit; the buildspec runs `bash infra/build/build-eif.sh`)."""
    manifest = json.loads((default.outdir / "NitroEnclaveDemo.assets.json").read_text())
    roots = [
        default.outdir / entry["source"]["path"]
        for entry in manifest["files"].values()
        if (default.outdir / entry["source"]["path"] / "infra/build/build-eif.sh").is_file()
    ]
    assert len(roots) == 1, roots
    target = tmp_path_factory.mktemp("asset") / "src"
    shutil.copytree(roots[0], target, copy_function=shutil.copyfile)
    return target


def test_the_real_build_script_over_the_code_asset_exports_what_the_handler_accepts(
    tmp_path: Path, code_asset: Path
) -> None:
    # The real build-eif.sh and context.py from the synthesized asset; only docker, nitro-cli, dnf and aws
    # are stand-ins. What reaches docker must be the normalized context of this checkout's app/.
    source = code_asset
    lower = json.dumps({"Measurements": {k: v.lower() for k, v in PCRS.items()}})  # nitro-cli's own case
    outcome, calls = run_build(
        tmp_path, source=source, project={"NITRO_CLI_VERSION": "1.4.2"}, MEASUREMENTS=lower
    )
    assert outcome.succeeded, outcome.output
    assert eif_exports(outcome.exported) == EXPORTED
    epoch = context.SOURCE_DATE_EPOCH
    assert (
        f"docker build --no-cache --build-arg SOURCE_DATE_EPOCH={epoch} -f enclave/Dockerfile"
        in "\n".join(calls)
    )
    expected = context.write(REPO_ROOT / "app", tmp_path / "expected.tar")
    assert hashlib.sha256((tmp_path / "calls.context.tar").read_bytes()).hexdigest() == expected
    variables = [{"name": k, "value": v} for k, v in outcome.exported.items()]
    build = {"id": "p:1", "buildStatus": "SUCCEEDED", "exportedEnvironmentVariables": variables}
    props = {"ProjectName": "EnclaveImageProject-abc", "RetirePrevious": "true", "ExpectedPcr0": ""}
    assert build_data(None, build, props)["NitroCliVersion"] == "1.4.2"


def test_the_real_build_script_refuses_an_installed_version_other_than_the_pin(
    tmp_path: Path, code_asset: Path
) -> None:
    source = code_asset
    outcome, calls = run_build(tmp_path, source=source, project={"NITRO_CLI_VERSION": "1.3.1"})
    assert outcome.phases == {"install": True, "build": False}
    assert "nitro-cli 1.4.2 is installed, but NITRO_CLI_VERSION pins 1.3.1" in outcome.output
    assert not [c for c in calls if c.startswith(("docker build", "aws "))]


def test_the_build_relies_on_exported_variables_and_the_directory_only(tmp_path: Path) -> None:
    # Whether CodeBuild carries unexported variables to the next command is documented only by samples; the
    # buildspec must not depend on it: the same agent, carrying exported variables only, builds the same.
    outcome, calls = run_build(tmp_path, carry_unexported=False)
    assert outcome.succeeded, outcome.output
    assert outcome.exported["EIF_KEY"] == f"eif/{hashlib.sha256(EIF_BYTES).hexdigest()}.eif"
    assert outcome.exported["EIF_VERSION"] == "v1.Zx+/version"
    assert outcome.exported["PCR0"] == "ab" * 48
    body = (tmp_path / "out/host-bundle.tar.gz").read_bytes()
    assert outcome.exported["BUNDLE_KEY"] == f"bundle/{hashlib.sha256(body).hexdigest()}.tar.gz"
    assert len(puts_of(calls, "eif/")) == len(puts_of(calls, "bundle/")) == 1


@pytest.mark.parametrize(("carry_unexported", "seen"), [(True, "1"), (False, "")])
def test_the_narrow_reading_drops_unexported_variables_and_keeps_the_rest(
    tmp_path: Path, carry_unexported: bool, seen: str
) -> None:
    # The check above is worth something only if the narrow run really loses an unexported variable.
    text = """
version: 0.2
env:
  shell: bash
  exported-variables: [A, B, WHERE, AFTER_SET_E]
phases:
  build:
    commands:
      - A=1; export B=2; set -e; mkdir d; cd d
      - export WHERE="${PWD##*/}"
      - "false || true; false; export AFTER_SET_E=ran"
"""
    outcome = buildspec_runner.run(
        text,
        source_dir=tmp_path,
        scratch=tmp_path / "scratch",
        base_env={"PATH": os.environ["PATH"]},
        carry_unexported=carry_unexported,
    )
    assert outcome.phases == {"build": True}, outcome.output  # `false` did not stop it: set -e is gone
    assert outcome.exported == {"A": seen, "B": "2", "WHERE": "d", "AFTER_SET_E": "ran"}

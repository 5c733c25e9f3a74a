"""The host installs exactly the bundle the build wrote: the launch template's user data names the build
resource's BundleKey, BundleVersion and BundleSha256, downloads that one object version, and refuses bytes
of any other SHA-256 with a FAILURE signal at step `bundle` before unpacking or running anything from it.
The rendered user data itself is run by bash, with `aws` and `curl` (IMDS) stubbed on PATH."""

from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.infra.cfn import Json, only
from tests.infra.test_host_files import user_data_parts

CONF_DIR_LINE = "readonly CONF_DIR=/etc/nitro-enclave-demo"
HOME_DIR_LINE = "readonly HOME_DIR=/opt/nitro-enclave-demo"
INSTANCE_ID = "i-0123456789abcdef0"
AWS = """#!/bin/bash
printf '%s\\n' "$*" >>"$CALLS"
if [[ $1 == s3api && $2 == get-object ]]; then
  cp "$FAKE_BUNDLE" "${@: -1}"
  echo '{"VersionId": "stub"}'
fi
exit 0
"""
CURL = f"""#!/bin/bash
case "$*" in
  *api/token*) echo token ;;
  *instance-id*) echo {INSTANCE_ID} ;;
esac
"""
# What the bundle's bootstrap.sh does when it runs: leave a mark (a tampered bundle's must never run).
BOOTSTRAP = '#!/bin/bash\ntouch "$RAN_MARKER"\n'


def bundle_bytes(bootstrap: str = BOOTSTRAP) -> bytes:
    """A gzipped tar as the buildspec makes it: the source tree with the host files' bootstrap.sh."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = bootstrap.encode()
        info = tarfile.TarInfo("./infra/constructs/host/bootstrap.sh")
        info.size, info.mode = len(data), 0o755
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    calls: list[str]
    ran: bool  # the bundle's bootstrap.sh ran
    unpacked: bool  # anything of the bundle reached the install directory


def run_user_data(template: Json, tmp_path: Path, *, served: bytes, recorded_sha256: str) -> Run:
    """The rendered user data with the build's BundleSha256 = `recorded_sha256`, S3 answering `served`."""
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    script = user_data_parts(template)["user-data.sh"]
    conf, home, stubs = tmp_path / "conf", tmp_path / "home", tmp_path / "bin"
    stubs.mkdir()
    sha_line = f"readonly BUNDLE_SHA256='getatt-{build_id}-BundleSha256'"
    for line in (CONF_DIR_LINE, HOME_DIR_LINE, sha_line):
        assert script.count(line) == 1, f"the user data no longer has one {line!r}"
    script = script.replace(CONF_DIR_LINE, f"readonly CONF_DIR={conf}")
    script = script.replace(HOME_DIR_LINE, f"readonly HOME_DIR={home}")
    script = script.replace(sha_line, f"readonly BUNDLE_SHA256='{recorded_sha256}'")
    for name, text in (("aws", AWS), ("curl", CURL)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    (tmp_path / "served.tar.gz").write_bytes(served)
    calls, marker = tmp_path / "calls", tmp_path / "bootstrap-ran"
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "CALLS": str(calls),
        "FAKE_BUNDLE": str(tmp_path / "served.tar.gz"),
        "RAN_MARKER": str(marker),
    }
    result = subprocess.run(
        ["/bin/bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return Run(
        returncode=result.returncode,
        output=result.stdout + result.stderr,
        calls=calls.read_text().splitlines() if calls.exists() else [],
        ran=marker.exists(),
        unpacked=(home / "src").exists() and any((home / "src").iterdir()),
    )


def test_the_user_data_names_the_builds_bundle_version_and_checksum(template: Json) -> None:
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    bucket_id, _ = only(template, "AWS::S3::Bucket")
    _, launch_template = only(template, "AWS::EC2::LaunchTemplate")
    _, variables = launch_template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    for name in ("BundleKey", "BundleVersion", "BundleSha256"):
        assert variables[name] == {"Fn::GetAtt": [build_id, name]}
    assert variables["BundleBucket"] == {"Ref": bucket_id}
    # No code asset: the hosts never read the CDK assets bucket.
    assert not {"CodeBucket", "CodeKey"} & set(variables)
    assert "cdk-" not in user_data_parts(template)["user-data.sh"]


def test_the_bundle_is_installed_when_its_sha256_is_the_builds(template: Json, tmp_path: Path) -> None:
    served = bundle_bytes()
    run = run_user_data(template, tmp_path, served=served, recorded_sha256=hashlib.sha256(served).hexdigest())
    assert run.returncode == 0, run.output
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    (download,) = [c for c in run.calls if c.startswith("s3api get-object")]
    assert f"--key getatt-{build_id}-BundleKey" in download
    assert f"--version-id getatt-{build_id}-BundleVersion" in download
    assert run.ran
    assert run.unpacked
    assert not [c for c in run.calls if "signal-resource" in c]


def test_a_tampered_bundle_is_refused_before_anything_of_it_runs(template: Json, tmp_path: Path) -> None:
    recorded = hashlib.sha256(bundle_bytes()).hexdigest()
    tampered = bundle_bytes(BOOTSTRAP + "echo an attacker's command\n")
    run = run_user_data(template, tmp_path, served=tampered, recorded_sha256=recorded)
    assert run.returncode != 0
    (signal,) = [c for c in run.calls if "signal-resource" in c]
    assert "--status FAILURE" in signal
    assert signal.endswith(f"--unique-id {INSTANCE_ID} bundle: bundle-checksum")
    assert (
        f"its SHA-256 is {hashlib.sha256(tampered).hexdigest()}, the build recorded {recorded}" in run.output
    )
    assert not run.ran
    assert not run.unpacked

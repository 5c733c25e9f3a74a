"""`--tamper-bundle`: a host pointed at a tampered host bundle must refuse it before anything of it runs.

After the build, the harness writes a new version of the build's bundle object (the same key) holding other
bytes: the real bundle with its bootstrap.sh replaced by one that leaves TAMPERED_MARKER, as whoever could
write the bucket would. The launch template's user data is then pointed at that new version (BundleVersion
replaced; the build's BundleSha256 kept), as a forged or swapped version id would. The host must download
it, find a SHA-256 other than the build's and signal FAILURE `bundle: bundle-checksum`; the marker must not
exist and nothing may be unpacked into the install directory. A host the template names the build's own
version (every other run) installs the build's bytes whatever the latest version of the key is.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile

from rehearsal.hosts import Host, HostFailed, wait_for_signal
from rehearsal.run import RehearsalFailed
from rehearsal.scenario import Stack

# The scenario's name where a `--revert` name would be (Stack.revert): reverts nothing.
TAMPERED = "tamper-bundle"
STEP = "tampered host bundle"
# Not /tmp: systemd-nspawn mounts a tmpfs there.
TAMPERED_MARKER = "/var/tmp/tampered-bundle-ran"  # noqa: S108 - a path inside the rehearsal's host
INSTALL_DIR = "opt/nitro-enclave-demo/src"
BOOTSTRAP = "./infra/constructs/host/bootstrap.sh"
TAMPERED_BOOTSTRAP = f"#!/bin/bash\ntouch {TAMPERED_MARKER}\n".encode()


def tampered_bytes(genuine: bytes) -> bytes:
    """The genuine bundle with bootstrap.sh replaced (every other member kept, in order)."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(genuine), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as target,
    ):
        for member in source.getmembers():
            if member.name == BOOTSTRAP:
                member.size = len(TAMPERED_BOOTSTRAP)
                target.addfile(member, io.BytesIO(TAMPERED_BOOTSTRAP))
            else:
                target.addfile(member, source.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def tamper(stack: Stack, user_data: str) -> str:
    """Put the tampered version of the build's bundle key; back: the user data naming that version."""
    data = stack.builds[0].data
    bucket = stack.cloud.refs[_bucket_logical_id(stack)]
    s3 = stack.cloud.client("s3")
    genuine = s3.get_object(Bucket=bucket, Key=data["BundleKey"], VersionId=data["BundleVersion"])[
        "Body"
    ].read()
    if hashlib.sha256(genuine).hexdigest() != data["BundleSha256"]:
        raise RehearsalFailed(STEP, "the build's own bundle version does not have the build's SHA-256")
    body = tampered_bytes(genuine)
    checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
    put = s3.put_object(Bucket=bucket, Key=data["BundleKey"], Body=body, ChecksumSHA256=checksum)
    version = str(put["VersionId"])
    if version == data["BundleVersion"]:
        raise RehearsalFailed(STEP, "S3 gave the tampered bundle the build's version id: is versioning on?")
    stack.run.say(
        f"tampered on purpose: s3://{bucket}/{data['BundleKey']} has a new version {version} "
        f"(SHA-256 {hashlib.sha256(body).hexdigest()}, bootstrap.sh replaced); the user data now names it"
    )
    line = re.compile(r"--version-id '" + re.escape(data["BundleVersion"]) + "'")
    pointed, count = line.subn(f"--version-id '{version}'", user_data)
    if count != 1:
        raise RehearsalFailed(STEP, f"the user data names the bundle's version {count} times, not once")
    return pointed


def refused(stack: Stack, host: Host) -> None:
    """FAILURE `bundle: bundle-checksum`, the tampered bootstrap.sh never ran, nothing unpacked."""
    try:
        signal = wait_for_signal(host, stack.services.signals_record)
    except HostFailed as failed:
        raise RehearsalFailed(failed.step, failed.reason) from failed
    if (host.root / TAMPERED_MARKER.lstrip("/")).exists():
        raise RehearsalFailed(STEP, f"the tampered bundle's bootstrap.sh ran on {host.spec.name}")
    unpacked = host.root / INSTALL_DIR
    if unpacked.exists() and any(unpacked.iterdir()):
        raise RehearsalFailed(STEP, f"the tampered bundle was unpacked into /{INSTALL_DIR}")
    expected = f"{host.spec.instance_id} bundle: bundle-checksum"
    if (signal.status, signal.unique_id) != ("FAILURE", expected):
        raise RehearsalFailed(
            STEP,
            f"expected FAILURE {expected!r}, {host.spec.name} signalled {signal.status} {signal.unique_id!r}",
        )
    stack.run.say(
        f"{host.spec.name} refused the tampered bundle: FAILURE, UniqueId {signal.unique_id!r}; "
        f"{TAMPERED_MARKER} does not exist and /{INSTALL_DIR} is empty: nothing of it ran"
    )


def _bucket_logical_id(stack: Stack) -> str:
    buckets = [
        logical_id
        for logical_id in stack.cloud.synthesized.resources("AWS::S3::Bucket")
        if logical_id.startswith("EnclaveImageEifs")
    ]
    if len(buckets) != 1:
        raise RehearsalFailed(STEP, f"expected one EIF bucket in the template, found {buckets}")
    return buckets[0]

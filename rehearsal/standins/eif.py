"""The stand-in EIF: one deterministic tar of the image's files plus a JSON header. Not the real EIF format.

The real EIF (aws-nitro-enclaves-image-format) holds a kernel, its command line and the image as initramfs
sections with a CRC. This one holds what the software enclave needs: `rehearsal-eif.json` (format, image id,
Cmd/Env/WorkingDir, the measurements, a SHA-256 of the files standing in for the CRC) and `rootfs/...`.
Its size on disk is what `run-enclave`'s 4x memory rule counts, as nitro-cli counts the EIF file's length.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = "rehearsal-standin-eif/1"
HEADER = "rehearsal-eif.json"
ROOTFS = "rootfs"


class EifError(Exception):
    """Not a stand-in EIF, or one whose content does not match its checksum."""


def _files(rootfs: Path) -> list[Path]:
    return sorted(p for p in rootfs.rglob("*") if p.is_file())


def content_digest(rootfs: Path) -> str:
    digest = hashlib.sha256()
    for path in _files(rootfs):
        for part in (path.relative_to(rootfs).as_posix().encode(), path.read_bytes()):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0  # no build-time mtimes: same image, same EIF
    return info, io.BytesIO(data)


def write(output: Path, rootfs: Path, header: dict[str, Any]) -> None:
    full = {**header, "format": FORMAT, "content_sha256": content_digest(rootfs)}
    with (
        output.open("wb") as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(*_member(HEADER, json.dumps(full, indent=2, sort_keys=True).encode()))
        for path in _files(rootfs):
            tar.addfile(*_member(f"{ROOTFS}/{path.relative_to(rootfs).as_posix()}", path.read_bytes()))


def read_header(eif: Path) -> dict[str, Any]:
    try:
        with tarfile.open(eif, mode="r:") as tar:
            member = tar.extractfile(HEADER)
            header: dict[str, Any] = json.loads(member.read()) if member else {}
    except (OSError, tarfile.TarError, KeyError, ValueError) as error:
        raise EifError(f"{eif} is not a stand-in EIF: {error}") from error
    if header.get("format") != FORMAT:
        raise EifError(f"{eif} is not a stand-in EIF ({FORMAT})")
    return header


def unpack(eif: Path, destination: Path) -> dict[str, Any]:
    """Extract the image's files into destination/rootfs and check them against the header."""
    header = read_header(eif)
    with tarfile.open(eif, mode="r:") as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise EifError(f"{eif}: unexpected member {member.name!r}")
            source = tar.extractfile(member)
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read() if source else b"")
    if content_digest(destination / ROOTFS) != header["content_sha256"]:
        raise EifError(f"{eif}: the image's files do not match the EIF's checksum")
    return header


def crc_ok(eif: Path) -> bool:
    with tempfile.TemporaryDirectory() as scratch:
        try:
            unpack(eif, Path(scratch))
        except EifError:
            return False
    return True

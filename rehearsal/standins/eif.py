"""The stand-in EIF: one deterministic tar of the image's root plus a JSON header. Not the real EIF format.

The real EIF (aws-nitro-enclaves-image-format) holds a kernel, its command line and the image as initramfs
sections with a CRC; the image's part is its root under /rootfs plus /cmd and /env (nitro_init.py). This one
holds what the software enclave needs: `rehearsal-eif.json` (format, image id, the kept Cmd and Env, the
measurements, a SHA-256 of the tree standing in for the CRC) and `rootfs/...`: every directory, regular file
(with its mode) and symbolic link of the image, owned by root, mtime 0. Its size on disk is what
`run-enclave`'s 4x memory rule counts, as nitro-cli counts the EIF file's length.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = "rehearsal-standin-eif/1"
HEADER = "rehearsal-eif.json"
ROOTFS = "rootfs"


class EifError(Exception):
    """Not a stand-in EIF, or one whose content does not match its checksum."""


def _tree(rootfs: Path) -> list[Path]:
    """Directories, regular files and links (not followed), sorted; no sockets or devices."""
    found = []
    for directory, subdirs, files in os.walk(rootfs):
        for name in [*subdirs, *files]:
            path = Path(directory, name)
            if path.is_symlink() or stat.S_ISDIR(path.lstat().st_mode) or stat.S_ISREG(path.lstat().st_mode):
                found.append(path)
    return sorted(found)


def _entry(path: Path) -> bytes:
    """What the checksum covers of one path: its kind and mode, and its content or link target."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return b"l" + os.readlink(path).encode()
    kind = b"d" if stat.S_ISDIR(info.st_mode) else b"f"
    content = path.read_bytes() if kind == b"f" else b""
    return kind + f"{stat.S_IMODE(info.st_mode):04o}".encode() + content


def content_digest(rootfs: Path) -> str:
    digest = hashlib.sha256()
    for path in _tree(rootfs):
        for part in (path.relative_to(rootfs).as_posix().encode(), _entry(path)):
            digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _member(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0  # no build-time mtimes: same image, same EIF
    return info, io.BytesIO(data)


def _tree_member(path: Path, name: str) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        member = tarfile.TarInfo(name)
        member.type, member.linkname, member.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
        return member, None
    if stat.S_ISDIR(info.st_mode):
        member = tarfile.TarInfo(name)
        member.type, member.mode = tarfile.DIRTYPE, stat.S_IMODE(info.st_mode)
        return member, None
    return _member(name, path.read_bytes(), stat.S_IMODE(info.st_mode))


def write(output: Path, rootfs: Path, header: dict[str, Any]) -> None:
    full = {**header, "format": FORMAT, "content_sha256": content_digest(rootfs)}
    with (
        output.open("wb") as handle,
        tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(*_member(HEADER, json.dumps(full, indent=2, sort_keys=True).encode()))
        for path in _tree(rootfs):
            member, data = _tree_member(path, f"{ROOTFS}/{path.relative_to(rootfs).as_posix()}")
            member.mtime = 0
            tar.addfile(member, data)


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
    """Extract the image's tree into destination/rootfs and check it against the header. A link is made as
    it is (an absolute target is the image's own, resolved inside the enclave's chroot); no member is
    written through a link, so nothing lands outside destination."""
    header = read_header(eif)
    with tarfile.open(eif, mode="r:") as tar:
        for member in tar.getmembers():
            name = PurePosixPath(member.name)
            if (
                not (member.isfile() or member.isdir() or member.issym())
                or name.is_absolute()
                or ".." in name.parts
            ):
                raise EifError(f"{eif}: unexpected member {member.name!r}")
            target = destination / name
            if target.is_symlink() or any((destination / up).is_symlink() for up in name.parents):
                raise EifError(f"{eif}: {member.name!r} would be written through a link")
            target.parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                target.symlink_to(member.linkname)
            elif member.isdir():
                target.mkdir(mode=member.mode, exist_ok=True)
                target.chmod(member.mode)
            else:
                source = tar.extractfile(member)
                target.write_bytes(source.read() if source else b"")
                target.chmod(member.mode)
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

"""`--tamper-bundle`'s tampered bytes: the genuine bundle with only bootstrap.sh replaced, so the host's
refusal can come from the checksum alone (the tar is whole, every other file as built)."""

from __future__ import annotations

import hashlib
import io
import tarfile

from rehearsal.tampered import BOOTSTRAP, TAMPERED_BOOTSTRAP, TAMPERED_MARKER, tampered_bytes


def _bundle(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _members(bundle: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as archive:
        found = {}
        for member in archive.getmembers():
            extracted = archive.extractfile(member)
            assert extracted is not None
            found[member.name] = extracted.read()
        return found


def test_only_bootstrap_is_replaced_and_the_checksum_differs() -> None:
    genuine = _bundle({"./app/relay.py": b"relay\n", BOOTSTRAP: b"#!/bin/bash\necho genuine\n"})
    tampered = tampered_bytes(genuine)
    assert hashlib.sha256(tampered).hexdigest() != hashlib.sha256(genuine).hexdigest()
    members = _members(tampered)
    assert members == {"./app/relay.py": b"relay\n", BOOTSTRAP: TAMPERED_BOOTSTRAP}
    assert TAMPERED_MARKER.encode() in members[BOOTSTRAP]

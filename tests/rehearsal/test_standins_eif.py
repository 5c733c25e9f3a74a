"""The stand-in EIF keeps the image's tree as the image has it: modes, links, directories; nothing escapes."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from rehearsal.standins import eif

HEADER = {"Cmd": ["/usr/local/bin/python3.11", "-m", "app.enclave"], "Env": ["PYTHONPATH=/opt/enclave"]}


def _image(root: Path) -> Path:
    (root / "usr/local/bin").mkdir(parents=True)
    interpreter = root / "usr/local/bin/python3.11"
    interpreter.write_bytes(b"\x7fELF")
    interpreter.chmod(0o755)
    (root / "usr/local/bin/python3").symlink_to("python3.11")
    (root / "usr/bin").mkdir()
    (root / "bin").symlink_to("usr/bin")
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    return root


def test_modes_links_and_empty_directories_come_back_as_built(tmp_path: Path) -> None:
    image = _image(tmp_path / "image")
    output = tmp_path / "image.eif"
    eif.write(output, image, HEADER)
    header = eif.unpack(output, tmp_path / "out")
    root = tmp_path / "out" / eif.ROOTFS
    assert (header["Cmd"], header["Env"]) == (HEADER["Cmd"], HEADER["Env"])
    assert (root / "usr/local/bin/python3.11").stat().st_mode & 0o777 == 0o755
    assert (root / "usr/local/bin/python3").readlink() == Path("python3.11")
    assert (root / "bin").readlink() == Path("usr/bin")
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert eif.crc_ok(output)


def test_the_same_image_gives_the_same_eif(tmp_path: Path) -> None:
    image = _image(tmp_path / "image")
    eif.write(tmp_path / "a.eif", image, HEADER)
    eif.write(tmp_path / "b.eif", image, HEADER)
    assert (tmp_path / "a.eif").read_bytes() == (tmp_path / "b.eif").read_bytes()


def test_a_changed_mode_fails_the_checksum(tmp_path: Path) -> None:
    image = _image(tmp_path / "image")
    eif.write(tmp_path / "a.eif", image, HEADER)
    before = eif.content_digest(image)
    (image / "usr/local/bin/python3.11").chmod(0o644)
    assert eif.content_digest(image) != before


def test_a_member_written_through_a_link_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    output = tmp_path / "evil.eif"
    header = {**HEADER, "format": eif.FORMAT, "content_sha256": ""}
    with tarfile.open(output, "w") as tar:
        for name, data in ((eif.HEADER, json.dumps(header).encode()), ("rootfs/x/planted", b"x")):
            if name.endswith("planted"):
                link = tarfile.TarInfo("rootfs/x")
                link.type, link.linkname = tarfile.SYMTYPE, str(outside)
                tar.addfile(link)
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(eif.EifError, match="through a link"):
        eif.unpack(output, tmp_path / "out")
    assert not (outside / "planted").exists()

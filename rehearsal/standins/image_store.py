"""The docker stand-in's image store: each image's files and config under /var/lib/docker, keyed by tag.

Written by `docker build` (docker_cli.py), read by `nitro-cli build-enclave` (nitro_cli.py), as the real
nitro-cli reads the local image through the Docker daemon. Each image's `rootfs` is its whole root
filesystem (the base layer's files, then what COPY and RUN added), its `config.json` what Docker's image
config records (Env, Cmd, Entrypoint, WorkingDir). Base images are not pulled: the one base the stand-in
knows (base_image.REFERENCE) is a directory under BASES named by its digest (the rehearsal binds it in,
rehearsal/python_base.py makes it), and RUN's pip reads WHEELHOUSE instead of PyPI. Stdlib only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.standins import host

STORE = "/var/lib/docker/rehearsal-images"
BASES = "/var/lib/docker/rehearsal-bases"  # <digest hex>/: a base image's root filesystem, read-only
WHEELHOUSE = "/var/lib/docker/rehearsal-wheelhouse"  # the wheels the images' requirements pin, read-only
TAGS_FILE = "tags.json"


@dataclass(frozen=True)
class Image:
    image_id: str  # "sha256:<64 hex>"
    directory: Path

    @property
    def rootfs(self) -> Path:
        return self.directory / "rootfs"

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.directory / "config.json").read_text(encoding="utf-8"))
        return loaded


def store() -> Path:
    return host.path(STORE)


def normalized(tag: str) -> str:
    """`name` means `name:latest`, as for docker."""
    return tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"


def tags() -> dict[str, str]:
    tags_file = store() / TAGS_FILE
    loaded: dict[str, str] = json.loads(tags_file.read_text()) if tags_file.exists() else {}
    return loaded


def tag_image(tag: str, image_id: str) -> None:
    host.write_json(store() / TAGS_FILE, {**tags(), normalized(tag): image_id})


def image_directory(image_id: str) -> Path:
    return store() / image_id.removeprefix("sha256:")


def find(tag: str) -> Image | None:
    image_id = tags().get(normalized(tag))
    return Image(image_id, image_directory(image_id)) if image_id else None


def base_layer(reference: str) -> Path | None:
    """The root filesystem of the base image `name:tag@sha256:<hex>`, if the store holds it."""
    _, at, digest = reference.partition("@sha256:")
    if not at or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    layer = host.path(BASES) / digest
    return layer if layer.is_dir() else None


def wheelhouse() -> Path:
    return host.path(WHEELHOUSE)


def tree_digest(rootfs: Path) -> str:
    """SHA-256 over every entry of a root filesystem in name order: its path, type, mode, and the content
    of a file or the target of a link (links are not followed)."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(rootfs):
        dirs.sort()
        for name in sorted([*dirs, *files]):
            path = Path(directory, name)
            info = path.lstat()
            if path.is_symlink():
                body = os.readlink(path).encode()
            elif path.is_file():
                body = path.read_bytes()
            else:
                body = b""
            for part in (path.relative_to(rootfs).as_posix().encode(), oct(info.st_mode).encode(), body):
                digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()

"""The docker stand-in's image store: each image's files and config under /var/lib/docker, keyed by tag.

Written by `docker build` (docker_cli.py), read by `nitro-cli build-enclave` (nitro_cli.py), as the real
nitro-cli reads the local image through the Docker daemon. Stdlib only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.standins import host

STORE = "/var/lib/docker/rehearsal-images"
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

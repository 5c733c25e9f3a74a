"""The base image's layout, as the docker stand-in and the Cmd contract read it (base_image.py)."""

from __future__ import annotations

import os
from pathlib import Path

from rehearsal import python_base
from rehearsal.standins import base_image
from tests.rehearsal.standin_helpers import image_inputs

INIT_PATH = "/sbin:/usr/sbin:/bin:/usr/bin"  # aws-nitro-enclaves-sdk-bootstrap init/init.c


def test_the_interpreter_is_found_only_by_its_absolute_path_on_the_inits_path() -> None:
    assert base_image.lookup(base_image.INTERPRETER, INIT_PATH) == "/usr/local/bin/python3.11"
    assert base_image.lookup("python", INIT_PATH) is None
    assert base_image.lookup("python3", INIT_PATH) is None
    assert base_image.lookup("/usr/bin/python3", INIT_PATH) is None
    assert base_image.lookup("/bin/python3.11", INIT_PATH) is None


def test_the_images_own_path_finds_the_links_in_usr_local_bin() -> None:
    image_path = dict(e.split("=", 1) for e in base_image.ENV)["PATH"]
    assert base_image.lookup("python", image_path) == "/usr/local/bin/python"
    assert base_image.lookup("pip", image_path) == "/usr/local/bin/pip"
    assert base_image.lookup("python2", image_path) is None


def test_every_link_points_at_a_name_of_the_same_directory() -> None:
    names = base_image.EXECUTABLES[base_image.BIN_DIR]
    for link, target in base_image.LINKS.items():
        assert link in names
        assert target in names


def test_the_built_base_layer_is_laid_out_as_the_description_says() -> None:
    """rehearsal/python_base.py's layer (cached, made from the debootstrapped root on first use): every name
    base_image lists in /usr/local/bin exists there but those the layer says it lacks, each link as listed,
    and no executable whose name starts with python anywhere on the init's PATH."""
    layer, _ = image_inputs()
    local_bin = layer / base_image.BIN_DIR.lstrip("/")
    present = {p.name for p in local_bin.iterdir()}
    assert present == set(base_image.EXECUTABLES[base_image.BIN_DIR]) - set(python_base.ABSENT)
    for name, target in base_image.LINKS.items():
        if name not in python_base.ABSENT:
            assert os.readlink(local_bin / name) == target
    assert (local_bin / "python3.11").is_file()
    assert not (local_bin / "python3.11").is_symlink()
    for directory in INIT_PATH.split(":"):
        found = [p.name for p in (layer / directory.lstrip("/")).iterdir() if p.name.startswith("python")]
        assert not found, directory
    for link, target in base_image.MERGED_USR.items():
        assert os.readlink(layer / link) == target
    assert not (layer / python_base.EXTERNALLY_MANAGED).exists()
    assert next((layer / "usr/local/lib/python3.11/dist-packages").glob("pip-*.dist-info"))


def test_the_one_base_the_docker_stand_in_holds_is_the_dockerfiles_from_as_written() -> None:
    # The stand-in refuses any other reference (it pulls nothing): a registry prefix changed in the
    # Dockerfile alone made every rehearsal build fail.
    dockerfile = Path(__file__).parents[2] / "app" / "enclave" / "Dockerfile"
    froms = [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("FROM ")]
    assert froms == [base_image.REFERENCE]

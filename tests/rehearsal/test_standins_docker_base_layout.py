"""The base image's layout, as the docker stand-in and the Cmd contract read it (base_image.py)."""

from __future__ import annotations

from rehearsal.standins import base_image

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

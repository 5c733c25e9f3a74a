"""install_standins: what the harness gets in the root before boot, and the nspawn options it must add."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rehearsal.standins import StandinSettings, nspawn_arguments
from tests.rehearsal.standin_helpers import REPO_ROOT, make_root, settings


def test_only_dnf_is_installed_before_boot_and_it_links_into_the_library(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    assert os.readlink(root / "usr/bin/dnf") == "/usr/lib/rehearsal-standins/rehearsal/standins/dnf.py"
    assert not (root / "usr/bin/nitro-cli").exists()
    library = root / "usr/lib/rehearsal-standins"
    for shared in ("rehearsal/contracts/allocator_config.py", "app/shared/vsock_tcp.py"):
        assert (library / shared).read_bytes() == (
            REPO_ROOT / shared
        ).read_bytes()  # the same code, unchanged


def test_the_settings_and_the_vsock_mapping_are_written(tmp_path: Path) -> None:
    root = make_root(tmp_path, settings(emulator_https_url="https://localhost:4443"))
    written = json.loads((root / "etc/rehearsal/standins.json").read_text())
    assert written["emulator_https_url"] == "https://localhost:4443"
    assert written["machine"]["instance_vcpus"] == 4
    conf = (root / "etc/systemd/system.conf.d/rehearsal-vsock-over-tcp.conf").read_text()
    assert "[Manager]\nDefaultEnvironment=NITRO_DEMO_VSOCK_OVER_TCP=3\n" in conf


def test_nspawn_gets_the_pki_pidfd_getfd_and_the_enclave_device_unless_it_is_left_out() -> None:
    on = StandinSettings(region="us-east-1", emulator_https_url="https://127.0.0.1:1")
    assert nspawn_arguments(on, pki_host_dir=Path("/x/pki")) == [
        "--bind-ro=/x/pki:/opt/rehearsal/pki",
        "--system-call-filter=pidfd_getfd",
        "--bind=/dev/null:/dev/nitro_enclaves",
    ]
    off = StandinSettings(region="us-east-1", emulator_https_url="https://127.0.0.1:1", enclave_device=False)
    assert nspawn_arguments(off, pki_host_dir=Path("/x/pki")) == [
        "--bind-ro=/x/pki:/opt/rehearsal/pki",
        "--system-call-filter=pidfd_getfd",
    ]

"""Stand-ins for what exists only on EC2 or Nitro, installed into the rehearsed host's root before it boots.

Interface for the harness (rehearsal/, `make rehearse`):

- `install_standins(rootfs, settings=StandinSettings(...))` before the first boot. It writes:
  - /usr/lib/rehearsal-standins/: the stand-in programs (this package), the allocator's parse rules
    (rehearsal/contracts/allocator_config.py) and app/shared/vsock_tcp.py, as files, unchanged;
  - /usr/bin/dnf: the dnf stand-in. Every other stand-in appears only when `dnf install` installs its package
    (packages.py): nitro-cli, vsock-proxy, nitro-enclaves-allocator, their units, docker, dockerd, the
    CloudWatch agent's ctl, /etc/nitro_enclaves/, group `ne`;
  - /etc/rehearsal/standins.json: these settings, for the stand-ins;
  - /etc/systemd/system.conf.d/rehearsal-vsock-over-tcp.conf:
    `DefaultEnvironment=NITRO_DEMO_VSOCK_OVER_TCP=3`, so every unit's vsock is carried over TCP, this
    machine being the parent at CID 3 (app.shared.vsock_tcp).
- `nspawn_arguments(settings, pki_host_dir=...)`: what systemd-nspawn must add: the local PKI read-only at
  `settings.pki_dir`, pidfd_getfd allowed (the software enclave's supervisor), and /dev/null bound at
  /dev/nitro_enclaves (the device exists on an instance launched with enclaves enabled; `test -c` only needs
  a character device, and no stand-in opens it).

StandinSettings fields:
- `region`: the stack's region (kms.<region>.amazonaws.com is what vsock-proxy is asked to reach);
- `emulator_https_url`: the emulator's HTTPS listener as seen from inside the container; vsock-proxy forwards
  every connection there instead of to KMS;
- `pki_dir`: where the LocalPki directory (app.local.software_nsm, LocalPki.save) is inside the container;
  the software enclave's NSM signs with its leaf key, and its TLS CA joins the image's CA bundle (the
  emulator's certificate names kms.<region>.amazonaws.com, which the image dials as on Nitro);
- `instance_id`, and the machine model the allocator and run-enclave judge by: `instance_vcpus`,
  `threads_per_core`, `instance_memory_mib`, `os_reserved_mib` (c5.xlarge by default);
- `venv_python`: the python the software enclave runs under (the relay's venv; tests point it elsewhere);
- `enclave_device`: False leaves /dev/nitro_enclaves out, as on an instance launched without enclave support.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from rehearsal.standins.host import CONFIG_FILE, LIB_DIR, VENV_PYTHON

REPO_ROOT = Path(__file__).resolve().parents[2]
STANDINS_DIR = Path(__file__).resolve().parent
# Copied unchanged: the stand-ins import them from the library in the rehearsed root.
LIBRARY_FILES = (
    "rehearsal/__init__.py",
    "rehearsal/contracts/__init__.py",
    "rehearsal/contracts/allocator_config.py",
    "app/__init__.py",
    "app/shared/__init__.py",
    "app/shared/vsock_tcp.py",
    # For the build container's measuring venv (rootfs.builder_layer), which resolves `app` here.
    "app/local/__init__.py",
    "app/local/software_nsm.py",
    # software_nsm's clock stamps (Stamp, TimedDocument) are the enclave's own NSM types.
    "app/enclave/__init__.py",
    "app/enclave/nsm.py",
)
PARENT_CID = 3
VSOCK_CONF = "/etc/systemd/system.conf.d/rehearsal-vsock-over-tcp.conf"
DEVICE = "/dev/nitro_enclaves"


@dataclass(frozen=True)
class MachineModel:
    """The instance the allocator and run-enclave judge requests by (c5.xlarge: 4 vCPUs, 2 a core, 8 GiB)."""

    instance_vcpus: int = 4
    threads_per_core: int = 2
    instance_memory_mib: int = 8192
    # What a freshly booted instance's kernel and services keep, which hugepages cannot take: an estimate.
    os_reserved_mib: int = 512


@dataclass(frozen=True)
class StandinSettings:
    region: str
    emulator_https_url: str
    pki_dir: str = "/opt/rehearsal/pki"
    instance_id: str = "i-0000000000000000"
    machine: MachineModel = MachineModel()
    venv_python: str = VENV_PYTHON
    enclave_device: bool = True


def _under(rootfs: Path, absolute: str) -> Path:
    return rootfs / absolute.lstrip("/")


def install_standins(rootfs: Path, *, settings: StandinSettings) -> None:
    """Put the stand-ins' library, /usr/bin/dnf, their settings and the vsock mapping into `rootfs`."""
    library = _under(rootfs, LIB_DIR)
    shutil.rmtree(library, ignore_errors=True)
    shutil.copytree(
        STANDINS_DIR, library / "rehearsal" / "standins", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in LIBRARY_FILES:
        (library / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, library / name)
    for program in (library / "rehearsal" / "standins").glob("*.py"):
        program.chmod(0o755)
    dnf = _under(rootfs, "/usr/bin/dnf")
    dnf.parent.mkdir(parents=True, exist_ok=True)
    dnf.unlink(missing_ok=True)
    dnf.symlink_to(f"{LIB_DIR}/rehearsal/standins/dnf.py")
    config = _under(rootfs, CONFIG_FILE)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
    vsock_conf = _under(rootfs, VSOCK_CONF)
    vsock_conf.parent.mkdir(parents=True, exist_ok=True)
    vsock_conf.write_text(
        "# The rehearsal only: vsock carried over TCP, this machine being the parent (CID 3).\n"
        f"[Manager]\nDefaultEnvironment=NITRO_DEMO_VSOCK_OVER_TCP={PARENT_CID}\n",
        encoding="utf-8",
    )


# The software enclave's supervisor copies the enclave's sockets with pidfd_getfd, which nspawn's default
# system call filter refuses (EPERM); seccomp user notification and its ADDFD pass it unchanged.
NSPAWN_SYSCALLS = "--system-call-filter=pidfd_getfd"


def nspawn_arguments(settings: StandinSettings, *, pki_host_dir: Path) -> list[str]:
    """The systemd-nspawn options the stand-ins need: the PKI, pidfd_getfd for the software enclave's
    supervisor, and the enclave device unless left out."""
    arguments = [f"--bind-ro={pki_host_dir}:{settings.pki_dir}", NSPAWN_SYSCALLS]
    if settings.enclave_device:
        arguments.append(f"--bind=/dev/null:{DEVICE}")
    return arguments

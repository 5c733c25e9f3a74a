"""The rehearsed host's root filesystem: a Debian base made once with debootstrap and cached, then copied
to a fresh run directory for every rehearsal (and left there, so anyone can inspect what the boot wrote).

The base holds what an AL2023 AMI brings that the user data relies on (systemd, python3, curl, jq) plus the
AWS CLI v1 in its own venv as /usr/local/bin/aws (AL2023 ships CLI v2; the host files call only `aws s3 cp`
and `aws ssm get-parameter`, which both have). Nothing here talks to the network except
debootstrap (Debian's mirror) and, inside the base's one-off nspawn, nothing: pip reads the wheelhouse.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from rehearsal.cfn import DEFAULT as CFN
from rehearsal.wheelhouse import AWSCLI_VERSION, CONTAINER_WHEELHOUSE

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"  # the mirror this machine's apt sources name
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "jq",
    "curl",
    "ca-certificates",
    "iproute2",
)
AWSCLI_VENV = "/opt/aws-cli-v1"
FILES_DIR = Path(__file__).resolve().parent / "files"
USER_DATA = "var/lib/cloud/instance/user-data.txt"
USER_DATA_SCRIPT = "var/lib/cloud/instance/scripts/part-001"
CLOUD_FINAL_UNIT = "rehearsal-cloud-final.service"
KEEP_RUNS = 3
DEBOOTSTRAPPED = ".rehearsal-debootstrapped"


class RootfsError(RuntimeError):
    """The base could not be built, or a run's root could not be prepared."""


def cache_key() -> str:
    recipe = "|".join((SUITE, MIRROR, *PACKAGES, AWSCLI_VERSION, AWSCLI_VENV))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def _run(argv: list[str], log: Path) -> None:
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise RootfsError(f"{argv[0]} exited {done.returncode} (see {log})")


def base(cache: Path, wheelhouse: Path) -> Path:
    """The cached base rootfs, built on first use (debootstrap, then the AWS CLI venv)."""
    ready = cache / f"rootfs-{cache_key()}"
    if (ready / "etc" / "os-release").exists():
        return ready
    partial = cache / f"rootfs-{cache_key()}.partial"
    log = cache / f"rootfs-{cache_key()}.log"
    stamp = partial / DEBOOTSTRAPPED
    if not stamp.exists():  # a debootstrap cut short is redone from scratch
        shutil.rmtree(partial, ignore_errors=True)
        log.write_text("", encoding="utf-8")
        argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(partial)]
        _run([*argv, MIRROR], log)
        stamp.touch()
    nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(partial)]
    bind = [f"--bind-ro={wheelhouse}:{CONTAINER_WHEELHOUSE}"]
    _run([*nspawn, "/usr/bin/python3", "-m", "venv", AWSCLI_VENV], log)
    pip = [f"{AWSCLI_VENV}/bin/pip", "install", "-q", "--no-index", "--find-links", CONTAINER_WHEELHOUSE]
    _run([*nspawn, *bind, *pip, f"awscli=={AWSCLI_VERSION}"], log)
    aws = partial / "usr/local/bin/aws"
    aws.unlink(missing_ok=True)
    aws.symlink_to(f"{AWSCLI_VENV}/bin/aws")
    stamp.unlink()
    partial.rename(ready)
    return ready


def prune_runs(run_dir: Path) -> None:
    """Keep only the newest KEEP_RUNS runs (each holds a few overlay upper dirs), unmounting what a killed
    run left mounted first, so nothing is removed through a mount."""
    if not run_dir.parent.is_dir():
        return
    earlier = sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p != run_dir)
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").split("\n")
    for old in earlier[: max(0, len(earlier) - (KEEP_RUNS - 1))]:
        for line in mounts:
            fields = line.split()
            if len(fields) > 1 and fields[1].startswith(f"{old}/"):
                subprocess.run(["umount", "--lazy", fields[1]], check=False)
        shutil.rmtree(old, ignore_errors=True)


def render_file(name: str, values: Mapping[str, str]) -> str:
    """One of rehearsal/files/, with its ${Name} placeholders filled (the same Fn::Sub as the template's)."""
    return CFN.substitute((FILES_DIR / name).read_text(encoding="utf-8"), values)


def install_text(root: Path, path: str, text: str, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    target.chmod(mode)
    return target


def configure(root: Path, *, user_data: str, default_environment: Mapping[str, str]) -> None:
    """Write the instance's user data, the cloud-final stand-in, pip's no-PyPI config and the endpoints."""
    install_text(root, USER_DATA, user_data, 0o600)
    install_text(root, USER_DATA_SCRIPT, user_data, 0o700)
    install_text(root, "etc/pip.conf", render_file("pip.conf", {"WheelhouseDir": CONTAINER_WHEELHOUSE}))
    assignments = " ".join(f'"{k}={v}"' for k, v in default_environment.items())
    install_text(
        root,
        "etc/systemd/system.conf.d/rehearsal-endpoints.conf",
        render_file("endpoints.conf", {"DefaultEnvironment": assignments}),
    )
    unit = render_file("cloud-final.service", {"ScriptPath": f"/{USER_DATA_SCRIPT}"})
    install_text(root, f"etc/systemd/system/{CLOUD_FINAL_UNIT}", unit)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / CLOUD_FINAL_UNIT).symlink_to(f"/etc/systemd/system/{CLOUD_FINAL_UNIT}")
    # The instance's hostname and machine id are its own; nspawn needs an empty machine-id to make one.
    install_text(root, "etc/hostname", "ip-10-0-0-10.ec2.internal\n")
    install_text(root, "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")


MEASURE_VENV = "/opt/rehearsal/measure-venv"
MEASURE_PACKAGES = ("cryptography", "cbor2")  # what app.local.software_nsm imports beyond the stdlib


def _pins(names: tuple[str, ...]) -> list[str]:
    """The project's own pins (pyproject.toml) for `names` and the build requirements pip needs."""
    from rehearsal.wheelhouse import requirements  # noqa: PLC0415

    return [r for r in requirements() if r.split("==")[0] in names]


def builder_layer(cache: Path, base_dir: Path, wheelhouse: Path) -> Path:
    """The build image's own layer over the base (an overlay upper dir, cached): the venv the nitro-cli
    stand-in measures with, its `app` resolved from the stand-ins' library (a .pth file)."""
    from rehearsal.standins.host import LIB_DIR  # noqa: PLC0415

    pins = _pins(MEASURE_PACKAGES)
    key = hashlib.sha256("|".join((base_dir.name, *pins, MEASURE_VENV, LIB_DIR)).encode()).hexdigest()[:12]
    ready = cache / f"builder-{key}"
    if ready.is_dir():
        return ready
    partial = cache / f"builder-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    upper, work, root = partial / "upper", partial / "work", partial / "root"
    for path in (upper, work, root):
        path.mkdir(parents=True)
    log = cache / f"builder-{key}.log"
    options = f"lowerdir={base_dir},upperdir={upper},workdir={work}"
    _run(["mount", "-t", "overlay", "overlay", "-o", options, str(root)], log)
    try:
        nspawn = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(root)]
        _run([*nspawn, "/usr/bin/python3", "-m", "venv", MEASURE_VENV], log)
        pip = [f"{MEASURE_VENV}/bin/pip", "install", "-q", "--no-index", "--find-links", CONTAINER_WHEELHOUSE]
        _run([*nspawn, f"--bind-ro={wheelhouse}:{CONTAINER_WHEELHOUSE}", *pip, *pins], log)
        site = next((root / MEASURE_VENV.lstrip("/")).glob("lib/python3*/site-packages"))
        (site / "rehearsal-standins.pth").write_text(f"{LIB_DIR}\n", encoding="utf-8")
    finally:
        _run(["umount", str(root)], log)
    upper.rename(ready)
    shutil.rmtree(partial, ignore_errors=True)
    return ready

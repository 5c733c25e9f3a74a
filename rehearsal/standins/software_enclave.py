"""The software enclave `nitro-cli run-enclave` starts: the EIF's own enclave code with app.local's software
NSM.

Runs under the rehearsed host's venv python (the relay's venv: boto3, cryptography, cbor2 pinned as the
image's requirements.txt pins them; the image's `RUN pip install` is not executed by the docker stand-in). The
code it serves is the EIF's: `app.enclave` and `app.shared` are imported from the unpacked image, and only
`app.local.software_nsm` from the venv, the way `python -m app.local.enclave` pairs them in local mode.

`measure` prints the PCRs for build-enclave; `run` serves. One function, `image_pcrs`, gives both, so the PCR0
in the measurements JSON is exactly what the software NSM attests: PCR0 = `measure_enclave_sources` of the
image's app directory (local mode's measurement); PCR1 = a fixed value (there is no enclave kernel here); PCR2
= `software_measurement` of every file in the image. Debug mode attests all zeros, as Nitro does.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import app
from app.local.software_nsm import (
    TLS_CA_FILE,
    LocalPki,
    SoftwareNsm,
    measure_enclave_sources,
    software_measurement,
)

NO_KERNEL = hashlib.sha384(
    b"nitro-enclave-demo rehearsal: software enclave, no enclave kernel or init"
).digest()


def image_pcrs(app_root: Path, image_root: Path) -> dict[int, bytes]:
    image_files = [p for p in image_root.rglob("*") if p.is_file()]
    return {
        0: measure_enclave_sources(app_root),
        1: NO_KERNEL,
        2: software_measurement(image_files, root=image_root),
    }


def _use_image_code(app_root: Path) -> None:
    """Resolve app.enclave and app.shared from the image, before anything imports them from the venv."""
    already = [name for name in ("app.enclave", "app.shared") if name in sys.modules]
    if already:
        raise RuntimeError(f"{already} imported before the image's code was put first")
    app.__path__.insert(0, str(app_root / "app"))


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Serve as the image's entry point does: a supervisor that re-runs this script once per worker (the
    workers' hidden options come from the image's own `app.enclave.workers`), the heartbeat sent once."""
    _use_image_code(args.app_root)
    from app.enclave import __main__ as enclave_main  # noqa: PLC0415 - only after _use_image_code
    from app.enclave import service, workers  # noqa: PLC0415
    from app.shared import logs, settings  # noqa: PLC0415

    served_from = Path(service.__file__).resolve()
    if not served_from.is_relative_to(args.app_root.resolve()):
        raise RuntimeError(f"the enclave code would come from {served_from}, not the EIF")
    worker_parser = argparse.ArgumentParser(add_help=False)
    workers.add_arguments(worker_parser)
    seat = workers.seat_from(worker_parser.parse_known_args(argv)[0])
    logs.configure(settings.env(settings.ENV_LOG_LEVEL, "INFO") or "INFO")
    # The enclave's KMS client trusts the emulator's TLS CA, as it trusts KMS's certificate on Nitro.
    os.environ["AWS_CA_BUNDLE"] = str(args.pki / TLS_CA_FILE)
    pcrs = {} if args.debug_mode else image_pcrs(args.app_root, args.image_root)
    enclave_settings, _ = enclave_main.parse_args([])  # the image's CMD: Nitro's defaults
    if args.kms_endpoint:
        enclave_settings = dataclasses.replace(enclave_settings, kms_endpoint_url=args.kms_endpoint)
    if seat is None:
        _heartbeat()

    def software_nsm() -> SoftwareNsm:
        return SoftwareNsm(LocalPki.load(args.pki), pcrs, module_id="rehearsal-software-nsm")

    entry = [sys.executable, str(Path(__file__).resolve()), *argv]
    return int(service.run(enclave_settings, seat, software_nsm, entry))


def _heartbeat() -> None:
    """What the enclave's init does first (enclave_ready in nitro-cli): 0xB7 to the parent's port 9000."""
    from app.shared import transport  # noqa: PLC0415 - the image's, after _use_image_code

    with transport.connect(transport.parse_url("vsock://3:9000")) as conn:
        conn.sendall(b"\xb7")
        conn.recv(1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="software_enclave.py")
    parser.add_argument("mode", choices=("measure", "run"))
    parser.add_argument("--app-root", type=Path, required=True, help="the image's WORKDIR (holds app/)")
    parser.add_argument("--image-root", type=Path, required=True, help="the image's files")
    parser.add_argument("--pki", type=Path, help="the LocalPki directory (run)")
    parser.add_argument("--kms-endpoint", default="", help="KMS URL for boto3; empty: the regional endpoint")
    parser.add_argument("--debug-mode", action="store_true")
    args, _ = parser.parse_known_args(argv)  # a worker also gets the image's hidden worker options
    if args.mode == "measure":
        pcrs = image_pcrs(args.app_root, args.image_root)
        print(json.dumps({f"PCR{index}": value.hex() for index, value in pcrs.items()}))
        return 0
    if args.pki is None:
        parser.error("run needs --pki")
    return run(args, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Stand-in for /usr/bin/nitro-cli: build-enclave, describe-eif, run-enclave, describe-enclaves,
terminate-enclave.

build-enclave follows `build_from_docker` in aws/aws-nitro-enclaves-cli `src/lib.rs` (2950b36), in its order:
"Start building the Enclave Image..." on stderr; the blobs' `cmdline` (NITRO_CLI_BLOBS, else the -devel
package's /usr/share/nitro_enclaves/blobs/) or E19; the output file is created; `artifacts_path()` needs
NITRO_CLI_ARTIFACTS or HOME (it makes `$HOME/.nitro_cli/`), else E51; the local image, else E50; then "Enclave
Image successfully created." on stderr and only the measurements JSON on stdout. Of the image's config it
keeps what `extract_image` keeps (enclave_build/src/docker.rs lines 266-284, nitro_init.kept_config): Cmd,
or Entrypoint only when there is no Cmd, and Env; WorkingDir and the rest are dropped; neither Cmd nor
Entrypoint is E48 (`Docker error: UnsupportedEntryPoint`, enclave_build/src/lib.rs `create`). The
measurements come from the software enclave's own function (software_enclave.py `image_pcrs`, via
app.local.software_nsm), so PCR0 is what the software NSM attests when this EIF runs. The EIF is the
stand-in format of eif.py. Enclave commands: enclaves.py.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import eif, enclaves, host, image_store, nitro_init
from rehearsal.standins.nitro_errors import exit_with
from rehearsal.standins.packages import NITRO_CLI_VERSION

DEFAULT_BLOBS = "/usr/share/nitro_enclaves/blobs/"
DOCKER_SOCKET = "/var/run/docker.sock"
EIF_VERSION = 4
HASH_ALGORITHM = "Sha384 { ... }"  # what nitro-cli prints for the PCRs' hash


def artifacts_path() -> Path:
    """NITRO_CLI_ARTIFACTS, else $HOME/.nitro_cli/, created; neither set is E51 (src/lib.rs)."""
    if os.environ.get("NITRO_CLI_ARTIFACTS") is not None:
        artifacts = Path(os.environ["NITRO_CLI_ARTIFACTS"])
    elif os.environ.get("HOME") is not None:
        artifacts = Path(f"{os.environ['HOME']}/.nitro_cli/")
    else:
        exit_with(51, "Could not find a folder for the CLI artifacts, set either HOME or NITRO_CLI_ARTIFACTS")
    try:
        artifacts.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        exit_with(19, f"Could not create artifacts path {artifacts}: {error.strerror}")
    return artifacts


def _docker_image(tag: str) -> image_store.Image:
    try:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(host.path(DOCKER_SOCKET)))
    except OSError:
        exit_with(50, f"Failed to pull docker image: cannot connect to the Docker daemon at {DOCKER_SOCKET}")
    image = image_store.find(tag)
    if image is None:
        exit_with(
            50, f"Failed to pull docker image: {tag} is not a local image and nothing can be pulled here"
        )
    return image


def measure(image_root: Path) -> dict[str, str]:
    """The PCRs, computed by the software enclave's own code under the venv's python."""
    python = host.settings().get("venv_python", host.VENV_PYTHON)
    script = Path(__file__).resolve().parent / "software_enclave.py"
    command = [python, str(script), "measure", "--image-root", str(image_root)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)  # noqa: S603
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        host.fail(f"rehearsal stand-in nitro-cli: measuring needs the venv's python {python}: {detail}")
    measured: dict[str, str] = json.loads(done.stdout)
    return {"HashAlgorithm": HASH_ALGORITHM, **measured}


def build_enclave(docker_uri: str, output: Path) -> int:
    print("Start building the Enclave Image...", file=sys.stderr, flush=True)
    blobs = Path(os.environ.get("NITRO_CLI_BLOBS") or str(host.path(DEFAULT_BLOBS)))
    if not (blobs / "cmdline").is_file():
        exit_with(
            19,
            f"Could not open kernel command line file\nFile: '{blobs}/cmdline', failing operation: 'Open'.",
        )
    try:
        output.open("wb").close()
    except OSError as error:
        exit_with(
            19,
            f"Could not create output file: {error.strerror}\nFile: '{output}', failing operation: 'Open'.",
        )
    artifacts_path()
    image = _docker_image(docker_uri)
    try:
        kept = nitro_init.kept_config(image.config)
    except nitro_init.UnsupportedEntryPoint:
        # enclave_build/src/lib.rs `create`: "Docker error: ...", then src/lib.rs maps it to E48
        print("Docker error: UnsupportedEntryPoint", file=sys.stderr, flush=True)
        exit_with(48, "Failed to create EIF image: DockerError")
    measurements = measure(image.rootfs)
    header = {"ImageId": image.image_id, "DockerUri": docker_uri, "Measurements": measurements,
              "Cmd": list(kept.cmd), "Env": list(kept.env)}  # fmt: skip
    eif.write(output, image.rootfs, header)
    print("Enclave Image successfully created.", file=sys.stderr, flush=True)
    print(json.dumps({"Measurements": measurements}, indent=2))
    return 0


def describe_eif(path: Path) -> int:
    try:
        header = eif.read_header(path)
    except eif.EifError as error:
        exit_with(35, str(error))
    info = {"EifVersion": EIF_VERSION, "Measurements": header["Measurements"], "IsSigned": False,
            "CheckCRC": eif.crc_ok(path), "ImageName": header["DockerUri"]}  # fmt: skip
    print(json.dumps(info, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="nitro-cli")
    # clap's --version/-V: "<app name> <CARGO_PKG_VERSION>" (src/main.rs, `app.version(version_str)`).
    top.add_argument("-V", "--version", action="version", version=f"Nitro CLI {NITRO_CLI_VERSION}")
    commands = top.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-enclave")
    build.add_argument("--docker-uri", required=True)
    build.add_argument("--output-file", required=True, type=Path)
    run = commands.add_parser("run-enclave")
    run.add_argument("--eif-path", required=True, type=Path)
    run.add_argument("--cpu-count", required=True, type=int)
    run.add_argument("--memory", required=True, type=int)
    run.add_argument("--enclave-cid", default="0")
    run.add_argument("--enclave-name")
    run.add_argument("--debug-mode", action="store_true")
    commands.add_parser("describe-enclaves")
    describe = commands.add_parser("describe-eif")
    describe.add_argument("--eif-path", required=True, type=Path)
    terminate = commands.add_parser("terminate-enclave")
    which = terminate.add_mutually_exclusive_group(required=True)
    which.add_argument("--enclave-id")
    which.add_argument("--enclave-name")
    which.add_argument("--all", action="store_true")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.command == "build-enclave":
        return build_enclave(args.docker_uri, args.output_file)
    if args.command == "describe-eif":
        return describe_eif(args.eif_path)
    if args.command == "run-enclave":
        return enclaves.run_enclave(
            args.eif_path,
            cpu_count=args.cpu_count,
            memory_mib=args.memory,
            cid_text=args.enclave_cid,
            name=args.enclave_name,
            debug=args.debug_mode,
        )
    if args.command == "describe-enclaves":
        return enclaves.describe_enclaves()
    return enclaves.terminate_enclave(args.enclave_id, args.enclave_name, args.all)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

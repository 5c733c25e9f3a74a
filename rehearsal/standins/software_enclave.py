"""The software enclave `nitro-cli run-enclave` starts instead of a VM: an init stand-in that runs the EIF's
own Cmd in the EIF's own root, as the enclave's init does (nitro_init.py: aws-nitro-enclaves-sdk-bootstrap
init/init.c), on the host kernel. Nothing of the checkout or the host's venv runs inside the enclave.

`run`, in init.c's order: the heartbeat 0xB7 to the parent's port 9000 and its echo (`enclave_ready`, lines
354-375), before the command is read; the kept Cmd and Env (the EIF header: /cmd and /env, lines 412-423);
then a child that chroots into the unpacked image root and does chdir("/") (lines 431-437), looks Cmd[0] up
(`sh` for an empty Cmd, lines 280-281) on the init's PATH (line 296) and execs it with every signal unblocked
and at SIG_DFL as a C init's child has them (lines 287-289; the SIGPIPE and SIGXFSZ Python ignores are reset)
and the image's Env only (line 297; a failure prints
`execvpe: <name>: <error>`, line 298); the init reaps until that child exits ("child exited with error" on a
non-zero status, lines 301-319) and then ends the enclave (`reboot`, line 449): every process left is
killed and this process exits, so describe-enclaves no longer lists it. stdout/stderr are the enclave's
console (enclaves.py keeps them in a file per enclave).

Below the program (enclave_devices.py): before chroot the child installs a seccomp filter whose listener this
process serves, answering /dev/nsm's ioctl with the software NSM (app.local.software_nsm, the rehearsal's PKI)
and carrying AF_VSOCK over TCP 127.0.0.<CID>; if that supervisor stops, the console says so and the enclave
ends (the command is killed) rather than leave its calls unanswered. /dev/nsm in the root is a plain file made
here; nothing is written through a symlink of the image (prepare_root runs before the chroot, on the host).

`measure` prints the PCRs for build-enclave; `run` attests the same (`image_pcrs`): PCR0 = local mode's
`measure_enclave_sources` of the image's app package (so the key policy's pin is the one local mode computes
for the same sources); PCR1 = a fixed value (no enclave kernel); PCR2 = `software_measurement` of every file
of the image. Debug mode attests all zeros, as Nitro does.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cbor2

from app.local.software_nsm import (
    TLS_CA_FILE,
    LocalPki,
    SoftwareNsm,
    measure_enclave_sources,
    software_measurement,
)
from app.shared import vsock_tcp
from rehearsal.standins import eif, nitro_init, seccomp_notify
from rehearsal.standins.enclave_devices import NSM_DEVICE, Supervisor, filter_program

NO_KERNEL = hashlib.sha384(
    b"nitro-enclave-demo rehearsal: software enclave, no enclave kernel or init"
).digest()
PR_SET_CHILD_SUBREAPER = 36
CA_BUNDLE = "botocore/cacert.pem"


class EnclaveImageError(ValueError):
    """The image has no single app package to measure."""


def image_app_root(image_root: Path) -> Path:
    """The one directory of the image holding app/enclave and app/shared (the Dockerfile's COPY target)."""
    packages = [p.parent.parent.parent for p in image_root.rglob("app/enclave/__init__.py")]
    found = [p for p in packages if (p / "app/shared").is_dir()]
    if len(found) != 1:
        raise EnclaveImageError(f"the image must hold exactly one app/enclave package, found {len(found)}")
    return found[0]


def image_pcrs(image_root: Path) -> dict[int, bytes]:
    image_files = [p for p in image_root.rglob("*") if p.is_file() and not p.is_symlink()]
    return {
        0: measure_enclave_sources(image_app_root(image_root)),
        1: NO_KERNEL,
        2: software_measurement(image_files, root=image_root),
    }


def nsm_answers(pki: LocalPki, pcrs: dict[int, bytes]) -> Callable[[bytes], bytes]:
    """The NSM's CBOR protocol for Attestation; any other request gets the NSM's InvalidOperation error."""
    module = SoftwareNsm(pki, pcrs, module_id="rehearsal-software-nsm")

    def answer(request: bytes) -> bytes:
        try:
            body = cbor2.loads(request)
        except (cbor2.CBORDecodeError, ValueError):
            return bytes(cbor2.dumps({"Error": "InvalidInput"}))
        asked = body.get("Attestation") if isinstance(body, dict) else None
        if not isinstance(asked, dict):
            return bytes(cbor2.dumps({"Error": "InvalidOperation"}))
        fields = {k: asked.get(k) for k in ("public_key", "user_data", "nonce")}
        return bytes(cbor2.dumps({"Attestation": {"document": module.attest(**fields)}}))

    return answer


def heartbeat(cid: int) -> None:
    """init.c `enclave_ready`: connect to 3:9000, send 0xB7, read it back (over vsock_tcp's addresses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.bind(vsock_tcp.tcp_address(cid, 0))
        conn.connect(vsock_tcp.tcp_address(nitro_init.HEARTBEAT_CID, nitro_init.HEARTBEAT_PORT))
        conn.sendall(nitro_init.HEARTBEAT)
        if conn.recv(1) != nitro_init.HEARTBEAT:
            raise OSError("received wrong heartbeat")


def _no_links(root: Path, path: Path) -> Path:
    """`path` if no component of it below `root` is a symlink (lstat); EnclaveImageError otherwise. This runs
    before the chroot: a link in the image (to /usr/..., or ../..) would lead a write out onto the host."""
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise EnclaveImageError(
                f"the image's {current.relative_to(root)} is a symlink: not written through"
            )
    return path


def prepare_root(root: Path, pki: Path) -> None:
    """/dev/nsm as a plain file; the rehearsal's TLS CA added to the image's botocore CA bundle, so its KMS
    client trusts the emulator that stands in for kms.<region>.amazonaws.com (a listed deviation). Nothing is
    written through a symlink of the image (refused: EnclaveImageError)."""
    dev = _no_links(root, root / "dev")
    dev.mkdir(exist_ok=True)
    nsm = _no_links(root, root / NSM_DEVICE.lstrip("/"))
    os.close(os.open(nsm, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644))
    ca = (pki / TLS_CA_FILE).read_bytes()
    for bundle in _no_links(root, root / "usr").rglob(CA_BUNDLE):  # rglob does not descend into links
        fd = os.open(_no_links(root, bundle), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "r+b") as file:
            bundled = file.read().rstrip(b"\n")
            file.seek(0)
            file.write(bundled + b"\n" + ca)
            file.truncate()


def _is_executable(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK)
    except OSError:
        return False


_SYS_RT_SIGACTION = 13  # x86_64
_SIGSET_BYTES = 8  # the kernel's sigset_t


class _KernelSigaction(ctypes.Structure):
    _fields_ = (("handler", ctypes.c_void_p), ("flags", ctypes.c_ulong), ("restorer", ctypes.c_void_p),
                ("mask", ctypes.c_ulong))  # fmt: skip


def _default_dispositions() -> None:
    """SIG_DFL for every signal, by rt_sigaction itself: glibc's sigaction refuses its reserved 32 and 33,
    which a parent may still have left ignored."""
    libc = ctypes.CDLL(None, use_errno=True)
    default = _KernelSigaction(None, 0, None, 0)  # SIG_DFL is handler 0
    for number in nitro_init.RESETTABLE_SIGNALS:
        libc.syscall(_SYS_RT_SIGACTION, number, ctypes.byref(default), None, _SIGSET_BYTES)


def _child(root: Path, kept: nitro_init.KeptConfig, program: bytes, to_parent: socket.socket) -> None:
    """In the forked child; never returns: whatever fails, the child ends here, not in the caller's code."""
    argv = nitro_init.exec_argv(kept.cmd)
    try:
        listener = seccomp_notify.install(program)
        socket.send_fds(to_parent, [b"L"], [listener])
        os.close(listener)
        to_parent.close()
        os.chroot(root)
        os.chdir(nitro_init.INIT_CWD)
        _default_dispositions()  # the C init's child has every one at SIG_DFL
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        environment = dict(item.split("=", 1) for item in nitro_init.exec_environment(kept.env))
        os.execve(nitro_init.lookup(argv[0], _is_executable), list(argv), environment)  # noqa: S606
    except OSError as error:
        print(nitro_init.exec_failure_line(argv[0], error), file=sys.stderr, flush=True)
        os._exit(error.errno or 1)  # init.c `dien`: exit(errno)
    except BaseException as error:  # a bug of the stand-in: said; the child still ends
        print(f"rehearsal init stand-in: {error!r}", file=sys.stderr, flush=True)
    os._exit(127)


def launch(root: Path, kept: nitro_init.KeptConfig, supervisor: Callable[[int], Supervisor]) -> int:
    """Fork the command's process; serve its notifications from a thread. Returns its pid."""
    ours, theirs = socket.socketpair()
    program = filter_program()
    pid = os.fork()
    if pid == 0:
        ours.close()
        _child(root, kept, program, theirs)
    theirs.close()
    with ours:
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    if not fds:
        return pid  # the child failed before its filter was in place; its console line says why
    threading.Thread(target=_serve_or_end, args=(supervisor(fds[0]), pid), daemon=True).start()
    return pid


def _serve_or_end(supervisor: Supervisor, pid: int) -> None:
    """The supervisor's thread. If it stops serving, nothing would answer the enclave's /dev/nsm or vsock
    calls again: say so on the console and kill the command, so the enclave ends (reap_until sees it)."""
    try:
        supervisor.serve()
    except BaseException as error:  # every way out of serve ends the enclave
        print(f"rehearsal enclave supervisor stopped: {error!r}; ending the enclave", file=sys.stderr)
        sys.stderr.flush()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap_until(pid: int) -> int:
    """init.c `reap_until`: wait for any child (orphans come here too) until `pid` ends; its status."""
    while True:
        done, status = os.wait()
        if done == pid:
            if os.WIFEXITED(status):
                if os.WEXITSTATUS(status) != 0:
                    print(nitro_init.CHILD_FAILED_LINE, file=sys.stderr, flush=True)
                return os.WEXITSTATUS(status)
            print(nitro_init.CHILD_SIGNALLED_LINE, file=sys.stderr, flush=True)
            return 128 + os.WTERMSIG(status)


def run(args: argparse.Namespace) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    heartbeat(args.cid)
    header: dict[str, Any] = eif.read_header(args.eif)
    kept = nitro_init.KeptConfig(tuple(header["Cmd"]), tuple(header["Env"]))
    root = args.work / eif.ROOTFS
    pcrs = {} if args.debug_mode else image_pcrs(root)  # the image as built, before prepare_root
    prepare_root(root, args.pki)
    answers = nsm_answers(LocalPki.load(args.pki), pcrs)
    pid = launch(root, kept, lambda listener: Supervisor(listener, args.cid, answers))
    status = reap_until(pid)
    sys.stderr.flush()
    shutil.rmtree(args.work, ignore_errors=True)
    os.killpg(os.getpgrp(), signal.SIGKILL)  # reboot(RB_AUTOBOOT): nothing of the enclave outlives it
    return status


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="software_enclave.py")
    modes = parser.add_subparsers(dest="mode", required=True)
    measure = modes.add_parser("measure")
    measure.add_argument("--image-root", type=Path, required=True, help="the image's files")
    start = modes.add_parser("run")
    start.add_argument("--eif", type=Path, required=True, help="the EIF (its header: Cmd, Env)")
    start.add_argument("--work", type=Path, required=True, help="where the EIF was unpacked")
    start.add_argument("--cid", type=int, required=True, help="the enclave's CID")
    start.add_argument("--pki", type=Path, required=True, help="the LocalPki directory")
    start.add_argument("--debug-mode", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "measure":
        pcrs = image_pcrs(args.image_root)
        print(json.dumps({f"PCR{index}": value.hex() for index, value in pcrs.items()}))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

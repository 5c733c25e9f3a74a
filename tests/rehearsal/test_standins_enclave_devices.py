"""The software enclave's supervisor under a real seccomp filter: a program using AF_VSOCK and the NSM ioctl
as the image's code does gets TCP at 127.0.0.<CID> and the NSM driver's answers, with no variable set."""

from __future__ import annotations

import json
import os
import random
import sys
import textwrap
from pathlib import Path

import pytest

from rehearsal.standins import nitro_init, software_enclave
from rehearsal.standins.enclave_devices import Supervisor

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="seccomp and chroot: Linux, as root"
)

PROBE = textwrap.dedent(
    """
    import ctypes, errno, fcntl, json, os, socket, sys, threading
    cid, port, out, nsm_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    seen = {"env": sorted(os.environ)}
    server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    server.bind((socket.VMADDR_CID_ANY, port))
    server.listen()
    seen["bound"] = server.getsockname()
    def call():  # from a thread that is not the process's first: the notification names the thread
        client = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        client.settimeout(5)
        client.connect((cid, port))
        client.sendall(b"ping")
        seen["answer"] = client.recv(4).decode()
    thread = threading.Thread(target=call)
    thread.start()
    conn, peer = server.accept()
    seen["peer"] = peer
    conn.sendall(conn.recv(4)[::-1])
    conn.close()
    thread.join()
    class Vec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    class Raw(ctypes.Structure):
        _fields_ = [("request", Vec), ("response", Vec)]
    def ioctl(request, room):
        asked = ctypes.create_string_buffer(request, len(request))
        answer = ctypes.create_string_buffer(room)
        raw = Raw(Vec(ctypes.addressof(asked), len(request)), Vec(ctypes.addressof(answer), room))
        fd = os.open(nsm_path, os.O_RDWR)
        try:
            fcntl.ioctl(fd, 0xC0200A00, raw)
        except OSError as error:
            return errno.errorcode[error.errno]
        finally:
            os.close(fd)
        return answer.raw[: raw.response.len].decode()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as error:
        seen["inet"] = errno.errorcode[error.errno]
    seen["nsm"] = ioctl(b"hello", 100)
    seen["nsm_truncated"] = ioctl(b"hello", 4)
    seen["nsm_too_long"] = ioctl(b"x" * 4097, 100)
    json.dump(seen, open(out, "w"))
    """
)


def test_vsock_and_the_nsm_ioctl_are_carried_below_the_program(tmp_path: Path) -> None:
    cid, port = random.randint(100, 250), random.randint(20000, 40000)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nsm").touch()
    (tmp_path / "probe.py").write_text(PROBE)
    out = tmp_path / "seen.json"
    argv = (
        sys.executable,
        str(tmp_path / "probe.py"),
        str(cid),
        str(port),
        str(out),
        str(tmp_path / "dev/nsm"),
    )
    kept = nitro_init.KeptConfig(argv, ("LANG=C.UTF-8",))

    def answer(request: bytes) -> bytes:
        return b"nsm:" + request

    pid = software_enclave.launch(Path("/"), kept, lambda listener: Supervisor(listener, cid, answer))
    assert software_enclave.reap_until(pid) == 0
    seen = json.loads(out.read_text())
    assert seen["env"] == ["LANG"]
    assert seen["bound"] == [f"127.0.0.{cid}", port]
    assert seen["peer"][0] == f"127.0.0.{cid}"  # a connecting socket carries the enclave's CID
    assert seen["answer"] == "gnip"
    assert seen["inet"] == "ENETUNREACH"  # no network but vsock, as in an enclave
    assert seen["nsm"] == "nsm:hello"
    assert seen["nsm_truncated"] == "nsm:"  # parse_resp_raw: cut to the caller's buffer, length written back
    assert seen["nsm_too_long"] == "EMSGSIZE"  # fill_req_raw: more than NSM_REQUEST_MAX_SIZE


def test_a_command_not_on_the_inits_path_fails_as_execvpe_does(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    kept = nitro_init.KeptConfig(("nitro-demo-absent", "-c", "pass"), ())
    pid = software_enclave.launch(Path("/"), kept, lambda listener: Supervisor(listener, 16, bytes))
    status = software_enclave.reap_until(pid)
    assert status != 0
    err = capfd.readouterr().err
    assert "execvpe: nitro-demo-absent: No such file or directory" in err
    assert nitro_init.CHILD_FAILED_LINE in err

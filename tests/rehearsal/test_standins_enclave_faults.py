"""The software enclave when something goes wrong below or around the image's program: a call interrupted by a
signal, a supervisor that cannot go on, a request the supervisor cannot carry, a notification gone stale, an
image with symlinks or an empty Cmd. Each must end in an answer or in the enclave's end, never in a caller
blocked for ever, and never in a write outside the image's root."""

from __future__ import annotations

import errno
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.local.software_nsm import TLS_CA_FILE
from rehearsal.standins import nitro_init, software_enclave
from rehearsal.standins import seccomp_notify as sn
from rehearsal.standins.enclave_devices import Supervisor

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or os.geteuid() != 0, reason="seccomp and chroot: Linux, as root"
)

# No site: a .pth of the venv connects an AF_UNIX socket at start-up, a notification of its own before ours.
PYTHON = (sys.executable, "-I", "-S")
HANG_GUARD_S = 30  # a caller blocked for ever is killed after this; the tests then fail on `guard_fired`

# The main thread blocks in socket(AF_VSOCK) (syscall 41); a helper thread sees it waiting there and signals
# it; the handler marks `interrupted`; the probe retries only once `go` exists.
INTERRUPTED_PROBE = textwrap.dedent(
    """
    import os, signal, socket, sys, threading, time
    interrupted, go = sys.argv[1], sys.argv[2]
    main = threading.get_native_id()
    signal.signal(signal.SIGUSR1, lambda *_: open(interrupted, "w").close())
    def interrupt():
        while True:
            with open(f"/proc/self/task/{main}/syscall") as state:
                if state.read().split()[0] == "41":
                    break
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
    threading.Thread(target=interrupt).start()
    while True:
        try:
            made = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
            break
        except InterruptedError:
            while not os.path.exists(go):
                time.sleep(0.01)
    made.close()
    """
)


def _wait_for(path: Path) -> None:
    for _ in range(HANG_GUARD_S * 100):
        if path.exists():
            return
        time.sleep(0.01)
    raise TimeoutError(str(path))


class Guarded:
    """launch + reap_until, with the child killed if it is still there after HANG_GUARD_S."""

    def __init__(self) -> None:
        self.guard_fired = False

    def run(self, kept: nitro_init.KeptConfig, supervisor: Callable[[int], Supervisor]) -> int:
        pid = software_enclave.launch(Path("/"), kept, supervisor)
        done = threading.Event()

        def guard() -> None:
            if not done.wait(HANG_GUARD_S):
                self.guard_fired = True
                os.kill(pid, signal.SIGKILL)

        threading.Thread(target=guard, daemon=True).start()
        try:
            return software_enclave.reap_until(pid)
        finally:
            done.set()


@pytest.fixture
def guarded() -> Guarded:
    return Guarded()


def test_a_call_interrupted_before_it_was_taken_does_not_stop_the_supervisor(
    tmp_path: Path, guarded: Guarded, monkeypatch: pytest.MonkeyPatch
) -> None:
    interrupted, go = tmp_path / "interrupted", tmp_path / "go"
    (tmp_path / "probe.py").write_text(INTERRUPTED_PROBE)
    first: list[int] = []
    real_receive = sn.receive

    def observed_receive(listener: int) -> sn.Notification:  # the kernel's answer, recorded, then the retry
        try:
            return real_receive(listener)
        except OSError as error:
            first.append(error.errno or 0)
            raise
        finally:
            go.touch()

    monkeypatch.setattr(sn, "receive", observed_receive)

    class AfterTheSignal(Supervisor):
        def serve(self) -> None:
            _wait_for(interrupted)  # the call was interrupted before anyone took its notification
            super().serve()

    argv = (*PYTHON, str(tmp_path / "probe.py"), str(interrupted), str(go))
    status = guarded.run(
        nitro_init.KeptConfig(argv, ()), lambda listener: AfterTheSignal(listener, 16, bytes)
    )
    assert first[:1] == [errno.ENOENT]  # seccomp_notify_recv: the caller's call was interrupted
    assert not guarded.guard_fired  # the retried socket() was answered
    assert status == 0


def test_a_supervisor_that_cannot_receive_ends_the_enclave_on_the_console(
    guarded: Guarded, capfd: pytest.CaptureFixture[str]
) -> None:
    not_a_listener = os.open("/dev/null", os.O_RDONLY)
    argv = (sys.executable, "-c", "import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)")
    try:
        status = guarded.run(
            nitro_init.KeptConfig(argv, ()), lambda _listener: Supervisor(not_a_listener, 16, bytes)
        )
    finally:
        os.close(not_a_listener)
    err = capfd.readouterr().err
    assert not guarded.guard_fired
    assert "rehearsal enclave supervisor stopped" in err
    assert status == 128 + signal.SIGKILL
    assert nitro_init.CHILD_SIGNALLED_LINE in err


FAULTS_PROBE = textwrap.dedent(
    """
    import ctypes, errno, fcntl, json, os, socket, sys
    out, nsm_path = sys.argv[1], sys.argv[2]
    seen = {}
    server = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    try:
        server.bind((socket.VMADDR_CID_ANY, 0xFFFFFFFF))  # VMADDR_PORT_ANY
    except OSError as error:
        seen["port_any"] = errno.errorcode[error.errno]
    class Vec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
    class Raw(ctypes.Structure):
        _fields_ = [("request", Vec), ("response", Vec)]
    asked, answer = ctypes.create_string_buffer(b"odd", 3), ctypes.create_string_buffer(100)
    raw = Raw(Vec(ctypes.addressof(asked), 3), Vec(ctypes.addressof(answer), 100))
    fd = os.open(nsm_path, os.O_RDWR)
    try:
        fcntl.ioctl(fd, 0xC0200A00, raw)
    except OSError as error:
        seen["nsm_raised"] = errno.errorcode[error.errno]
    json.dump(seen, open(out, "w"))
    """
)


def test_every_call_gets_an_answer_even_when_the_supervisor_fails(
    tmp_path: Path, guarded: Guarded, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "probe.py").write_text(FAULTS_PROBE)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/nsm").touch()
    out = tmp_path / "seen.json"

    def failing_nsm(request: bytes) -> bytes:
        raise TypeError(f"cannot attest {len(request)} odd bytes")

    argv = (*PYTHON, str(tmp_path / "probe.py"), str(out), str(tmp_path / "dev/nsm"))
    status = guarded.run(
        nitro_init.KeptConfig(argv, ()), lambda listener: Supervisor(listener, 16, failing_nsm)
    )
    err = capfd.readouterr().err
    assert not guarded.guard_fired
    assert status == 0
    assert out.read_text() == '{"port_any": "EINVAL", "nsm_raised": "EIO"}'
    assert "vsock port 0xffffffff has no TCP port" in err
    assert "TypeError('cannot attest 3 odd bytes')" in err


def test_a_stale_notification_is_never_used_through_what_was_opened(tmp_path: Path, guarded: Guarded) -> None:
    interrupted, go = tmp_path / "interrupted", tmp_path / "go"
    probe = textwrap.dedent(
        f"""
        import os, signal, socket, time
        signal.signal(signal.SIGUSR1, lambda *_: open({str(interrupted)!r}, "w").close())
        try:
            socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        except InterruptedError:
            while not os.path.exists({str(go)!r}):  # alive, so its pid and memory are still there
                time.sleep(0.01)
        """
    )
    outcomes: list[str] = []

    class InterruptsFirst(Supervisor):
        def serve(self) -> None:
            n = sn.receive(self.listener)
            os.kill(n.pid, signal.SIGUSR1)
            _wait_for(interrupted)  # the caller left its call: the notification is stale, the pid is not
            attempts: tuple[Callable[[], int], ...] = (
                lambda: sn.open_memory(self.listener, n.id, n.pid),
                lambda: sn.take_fd(self.listener, n.id, n.pid, 0),
            )
            for attempt in attempts:
                try:
                    os.close(attempt())
                    outcomes.append("used")
                except sn.StaleNotification:
                    outcomes.append("stale")
            go.touch()
            super().serve()

    argv = (*PYTHON, "-c", probe)
    status = guarded.run(
        nitro_init.KeptConfig(argv, ()), lambda listener: InterruptsFirst(listener, 16, bytes)
    )
    assert status == 0
    assert outcomes == ["stale", "stale"]


def test_the_command_starts_with_default_signal_dispositions(capfd: pytest.CaptureFixture[str]) -> None:
    """The test runner (Python) ignores SIGPIPE and SIGXFSZ; the C init's child ignores nothing."""
    guarded = Guarded()
    kept = nitro_init.KeptConfig(("grep", "^SigIgn", "/proc/self/status"), ())
    assert guarded.run(kept, lambda listener: Supervisor(listener, 16, bytes)) == 0
    assert capfd.readouterr().out.split() == ["SigIgn:", "0" * 16]


def test_an_empty_cmd_runs_sh_as_the_init_does(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert nitro_init.exec_argv(()) == ("sh",)
    assert nitro_init.exec_argv(("python3.11", "-m", "x")) == ("python3.11", "-m", "x")
    # An empty root has no sh: the init's own failure line, and the child ends with ENOENT.
    pid = software_enclave.launch(
        tmp_path, nitro_init.KeptConfig((), ()), lambda fd: Supervisor(fd, 16, bytes)
    )
    assert software_enclave.reap_until(pid) == errno.ENOENT
    err = capfd.readouterr().err
    assert "execvpe: sh: No such file or directory" in err
    assert nitro_init.CHILD_FAILED_LINE in err


def _pki(tmp_path: Path) -> Path:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / TLS_CA_FILE).write_bytes(b"REHEARSAL CA\n")
    return pki


def test_prepare_root_appends_the_ca_and_makes_dev_nsm(tmp_path: Path) -> None:
    root = tmp_path / "root"
    bundle = root / "usr/local/lib/python3.11/site-packages/botocore/cacert.pem"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(b"AMAZON CA\n")
    software_enclave.prepare_root(root, _pki(tmp_path))
    assert bundle.read_bytes() == b"AMAZON CA\nREHEARSAL CA\n"
    assert (root / "dev/nsm").is_file()


@pytest.mark.parametrize(
    ("link", "target_is_dir"),
    [
        ("usr/local/lib/python3.11/site-packages/botocore/cacert.pem", False),
        ("usr/local/lib/python3.11/site-packages/botocore", True),
        ("usr", True),
        ("dev", True),
        ("dev/nsm", False),
    ],
)
def test_prepare_root_writes_nothing_through_a_symlink_of_the_image(
    tmp_path: Path, link: str, target_is_dir: bool
) -> None:
    host = tmp_path / "host"  # stands for the rehearsal container's own files
    host_bundle = host / "usr/local/lib/python3.11/site-packages/botocore/cacert.pem"
    host_bundle.parent.mkdir(parents=True)
    host_bundle.write_bytes(b"HOST CA\n")
    (host / "dev").mkdir()
    (host / "dev/nsm").write_bytes(b"HOST NSM")
    root = tmp_path / "root"
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(host / link, target_is_directory=target_is_dir)
    with pytest.raises(software_enclave.EnclaveImageError, match="symlink"):
        software_enclave.prepare_root(root, _pki(tmp_path))
    assert host_bundle.read_bytes() == b"HOST CA\n"
    assert (host / "dev/nsm").read_bytes() == b"HOST NSM"

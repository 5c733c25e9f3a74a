"""seccomp user notification for the software enclave, stdlib only (ctypes): a filter that hands four
system calls of the enclave's processes to a supervisor, and the supervisor's side of the listener.

Kernel interface (include/uapi/linux/seccomp.h, Documentation/userspace-api/seccomp_filter.rst): the child
sets PR_SET_NO_NEW_PRIVS, then seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER) returns the
listener fd; the filter is inherited across fork and execve, so every process of the enclave is covered.
The supervisor takes each notification with SECCOMP_IOCTL_NOTIF_RECV and answers it with NOTIF_SEND (a value
or an errno, or SECCOMP_USER_NOTIF_FLAG_CONTINUE to run the call as asked) or NOTIF_ADDFD with
SECCOMP_ADDFD_FLAG_SEND (install an fd in the caller and return its number). It reads and writes the
caller's memory through /proc/<pid>/mem and takes a copy of a caller's fd with pidfd_getfd; as
seccomp_unotify(2) prescribes, it opens the mem file (once per notification) or the pidfd first, then checks
with NOTIF_ID_VALID that the caller is still the one that asked, and only then reads, writes or copies
through that fd. x86_64 only (the image is x86_64).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
from dataclasses import dataclass

SYS_SECCOMP, SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 317, 434, 438  # arch/x86/entry/syscalls/syscall_64.tbl
SYS_IOCTL, SYS_SOCKET, SYS_CONNECT, SYS_BIND = 16, 41, 42, 49
AUDIT_ARCH_X86_64 = 0xC000003E
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER = 1, 1 << 3
SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF = 0x7FFF0000, 0x7FC00000
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SEND = 1 << 1
# _IOWR('!', 0, struct seccomp_notif[80]), _IOWR('!', 1, struct seccomp_notif_resp[24]),
# _IOW('!', 2, __u64), _IOW('!', 3, struct seccomp_notif_addfd[24])
NOTIF_RECV, NOTIF_SEND, NOTIF_ID_VALID, NOTIF_ADDFD = 0xC0502100, 0xC0182101, 0x40082102, 0x40182103
NOTIF_SIZE = 80
# BPF opcodes (include/uapi/linux/bpf_common.h): BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
NR_OFFSET, ARCH_OFFSET, ARGS_OFFSET = 0, 4, 16  # struct seccomp_data

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class SeccompError(OSError):
    """A seccomp or pidfd call the kernel (or the container's own filter) refused."""


@dataclass(frozen=True)
class Notification:
    """One stopped system call: who asked, which call, its six arguments."""

    id: int
    pid: int
    nr: int
    args: tuple[int, ...]


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("HBBI", code, 0, 0, k)


def _jeq(k: int, jt: int, jf: int) -> bytes:
    return struct.pack("HBBI", JEQ, jt, jf, k)


def filter_program(nsm_ioctl: int, vsock_family: int) -> bytes:
    """Notify on ioctl(_, nsm_ioctl), socket(vsock_family, ...), bind and connect; allow everything else."""

    def arg(n: int) -> int:
        return ARGS_OFFSET + 8 * n  # the low 32 bits of argument n (little endian)

    program = [
        _stmt(LD_ABS, ARCH_OFFSET), _jeq(AUDIT_ARCH_X86_64, 1, 0), _stmt(RET, SECCOMP_RET_ALLOW),  # 0-2
        _stmt(LD_ABS, NR_OFFSET),  # 3
        _jeq(SYS_IOCTL, 0, 2), _stmt(LD_ABS, arg(1)), _jeq(nsm_ioctl, 5, 6),  # 4-6
        _jeq(SYS_SOCKET, 0, 2), _stmt(LD_ABS, arg(0)), _jeq(vsock_family, 2, 3),  # 7-9
        _jeq(SYS_CONNECT, 1, 0), _jeq(SYS_BIND, 0, 1),  # 10-11
        _stmt(RET, SECCOMP_RET_USER_NOTIF), _stmt(RET, SECCOMP_RET_ALLOW),  # 12-13
    ]  # fmt: skip
    return b"".join(program)


def install(program: bytes) -> int:
    """In the process to be watched: no new privileges, the filter, and the listener fd it returns."""
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SeccompError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    code = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))

    fprog = SockFprog(len(program) // 8, ctypes.addressof(code))
    fd = _libc.syscall(
        SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(fprog)
    )
    if fd < 0:
        raise SeccompError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)")
    return int(fd)


def receive(listener: int) -> Notification:
    """The next notification. ENOENT (seccomp_unotify(2), kernel seccomp_notify_recv): the caller was killed
    or its call interrupted by a signal before the notification was taken; the next one may follow. With
    no caller left it blocks (or, once no process uses the filter, the listener reports POLLHUP)."""
    data = bytearray(NOTIF_SIZE)
    fcntl.ioctl(listener, NOTIF_RECV, data)
    notif_id, pid, _flags, nr = struct.unpack_from("QIIi", data, 0)
    return Notification(notif_id, pid, nr, struct.unpack_from("6Q", data, 32))  # data.args


def respond(listener: int, notif_id: int, *, value: int = 0, error: int = 0, proceed: bool = False) -> None:
    """Answer: return `value`, fail with errno `error`, or (proceed) let the kernel run the call as asked."""
    flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE if proceed else 0
    fcntl.ioctl(listener, NOTIF_SEND, bytearray(struct.pack("QqiI", notif_id, value, -error, flags)))


def add_fd(listener: int, notif_id: int, fd: int, *, cloexec: bool) -> int:
    """Install a copy of our `fd` in the caller and answer its call with the new number."""
    flags = os.O_CLOEXEC if cloexec else 0
    request = bytearray(struct.pack("QIIII", notif_id, SECCOMP_ADDFD_FLAG_SEND, fd, 0, flags))
    return fcntl.ioctl(listener, NOTIF_ADDFD, request)  # type: ignore[no-any-return]


def still_valid(listener: int, notif_id: int) -> bool:
    try:
        fcntl.ioctl(listener, NOTIF_ID_VALID, bytearray(struct.pack("Q", notif_id)))
    except OSError:
        return False
    return True


class StaleNotification(SeccompError):
    """The notification's caller is gone, or its call was interrupted: what was opened may be another's."""


def check_valid(listener: int, notif_id: int) -> None:
    """Raise StaleNotification unless `notif_id` still names a waiting call (NOTIF_ID_VALID)."""
    if not still_valid(listener, notif_id):
        raise StaleNotification(2, f"notification {notif_id} is no longer valid")  # ENOENT


def open_memory(listener: int, notif_id: int, pid: int) -> int:
    """/proc/<pid>/mem opened read-write, then NOTIF_ID_VALID (seccomp_unotify(2): open first, check, then
    use that fd): a pid reused since the notification fails the check. The caller closes it."""
    fd = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
    try:
        check_valid(listener, notif_id)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_memory(mem: int, address: int, length: int) -> bytes:
    """From the caller's memory, through the fd open_memory gave."""
    return os.pread(mem, length, address)


def write_memory(mem: int, address: int, data: bytes) -> None:
    """Into the caller's memory, through the fd open_memory gave."""
    if os.pwrite(mem, data, address) != len(data):
        raise SeccompError(14, "short write into the caller's memory")  # EFAULT


def thread_group(tid: int) -> int:
    """The process a thread belongs to: a notification names the calling thread, pidfd_open wants its
    process (without PIDFD_THREAD it refuses any thread but the leader)."""
    with open(f"/proc/{tid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Tgid:"):
                return int(line.split()[1])
    raise SeccompError(3, f"thread {tid} has no Tgid")  # ESRCH


def take_fd(listener: int, notif_id: int, tid: int, fd: int) -> int:
    """A copy of thread `tid`'s `fd` (pidfd_getfd: the same open socket, not a new one); the pidfd is checked
    with NOTIF_ID_VALID after it is opened and before it is used, as for /proc/<pid>/mem."""
    pid = thread_group(tid)
    pidfd = _libc.syscall(SYS_PIDFD_OPEN, pid, 0)
    if pidfd < 0:
        raise SeccompError(ctypes.get_errno(), f"pidfd_open({pid})")
    try:
        check_valid(listener, notif_id)
        copy = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            raise SeccompError(ctypes.get_errno(), f"pidfd_getfd({pid}, {fd})")
        return int(copy)
    finally:
        os.close(pidfd)

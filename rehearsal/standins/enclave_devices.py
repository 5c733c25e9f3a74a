"""What the Nitro hypervisor gives an enclave, provided below the image's program by a seccomp supervisor
(seccomp_notify.py): /dev/nsm and AF_VSOCK, so the image's own code runs with no extra variable; not quite
unchanged: a socket made here is AF_INET, so getsockname/accept/getpeername answer ('127.0.0.<CID>', port) and
a socket rebuilt from an inherited fd reports AF_INET, and the image's code that branches on the family
(app/shared/transport.py `bound_url`) takes its vsock-over-TCP branch here, its AF_VSOCK one on Nitro (a
listed deviation; answering getsockname/getpeername/accept as AF_VSOCK would mean rewriting sockaddrs of
three more calls, not done).

- ioctl(fd of /dev/nsm, NSM_IOCTL_RAW = _IOWR(0x0A, 0, struct nsm_raw)): as linux drivers/misc/nsm.c does it,
  `fill_req_raw` (a request longer than NSM_REQUEST_MAX_SIZE 0x1000 is EMSGSIZE) and `parse_resp_raw` (the
  answer truncated to the caller's response buffer, `response.len` set to what was copied, the struct copied
  back); include/uapi/linux/nsm.h for the sizes. The answer comes from the function given (the software NSM).
- socket(AF_VSOCK, SOCK_STREAM[|SOCK_CLOEXEC|SOCK_NONBLOCK], 0): an AF_INET stream socket made here and
  installed in the caller (SO_REUSEADDR set: vsock ports have no TIME_WAIT); other types are refused.
- bind/connect with a struct sockaddr_vm (include/uapi/linux/vm_sockets.h): carried out on the caller's own
  socket at the TCP address app.shared.vsock_tcp gives the (CID, port), the one rule the parent side uses:
  bind VMADDR_CID_ANY or the enclave's CID at 127.0.0.<CID>; a connecting socket is first bound to the
  enclave's address, so the peer sees the enclave's CID. An IPv4/IPv6 address is refused as in an enclave,
  which boots with `lo` down and no other interface (connect ENETUNREACH, bind EADDRNOTAVAIL): the host's
  network is not the enclave's. Any other family (AF_UNIX) runs as the caller asked. A vsock port above
  65535 (VMADDR_PORT_ANY 0xFFFFFFFF among them) is refused with EINVAL and a console line: no TCP port
  carries it (a listed deviation; vsock would pick a free port).
- Every notification is answered: a failure of the supervisor's own (any exception) is printed on the console
  and answered EIO (or the OSError's errno), never left blocking the caller.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.shared import vsock_tcp
from rehearsal.standins import seccomp_notify as sn

AF_VSOCK = 40
VMADDR_CID_ANY = 0xFFFFFFFF
NSM_IOCTL_RAW = 0xC0200A00
NSM_DEVICE = "/dev/nsm"
NSM_REQUEST_MAX_SIZE, NSM_RAW_BYTES = 0x1000, 32
SOCKADDR_VM_BYTES = 16
SOCK_TYPE_MASK = 0xF
MAX_TCP_PORT = 0xFFFF  # a vsock port is 32 bits; the TCP one carrying it 16 (VMADDR_PORT_ANY is refused)


def filter_program() -> bytes:
    """The seccomp filter the enclave's processes run under: these four calls come to the Supervisor."""
    return sn.filter_program(NSM_IOCTL_RAW, AF_VSOCK)


class Supervisor:
    """Answers the enclave's notifications, each in a thread of its own, for as long as the enclave runs."""

    def __init__(self, listener: int, cid: int, nsm: Callable[[bytes], bytes]) -> None:
        self.listener, self.cid, self.nsm = listener, vsock_tcp.checked_cid(cid), nsm

    def serve(self) -> None:
        """Never returns: an error of NOTIF_RECV other than ENOENT (a caller killed, or its call interrupted
        by a signal, before we took it: seccomp_unotify(2)) or EINTR is raised, and the enclave must end
        then (software_enclave.launch): nothing would answer its calls any more."""
        while True:
            try:
                notification = sn.receive(self.listener)
            except OSError as error:
                if error.errno in (errno.ENOENT, errno.EINTR):
                    continue
                raise
            threading.Thread(target=self._answer, args=(notification,), daemon=True).start()

    def _answer(self, n: sn.Notification) -> None:
        handlers = {sn.SYS_IOCTL: self._ioctl, sn.SYS_SOCKET: self._socket,
                    sn.SYS_BIND: self._bind_or_connect, sn.SYS_CONNECT: self._bind_or_connect}  # fmt: skip
        try:
            handlers[n.nr](n)
        except sn.StaleNotification:
            return  # the caller is gone or was interrupted: nobody waits for an answer
        except Exception as error:  # said on the console: a failure here is the rehearsal's, not the image's
            print(f"rehearsal enclave supervisor: system call {n.nr} of {n.pid}: {error!r}", file=sys.stderr)
            code = error.errno if isinstance(error, OSError) and error.errno else errno.EIO
            self._reply(n, error=code)

    def _reply(self, n: sn.Notification, *, value: int = 0, error: int = 0, proceed: bool = False) -> None:
        with contextlib.suppress(OSError):  # the caller is gone (killed while it waited)
            sn.respond(self.listener, n.id, value=value, error=error, proceed=proceed)

    def _ioctl(self, n: sn.Notification) -> None:
        try:
            opened = os.readlink(f"/proc/{n.pid}/fd/{n.args[0]}")
        except OSError:
            opened = ""
        if not opened.endswith(NSM_DEVICE):
            self._reply(n, proceed=True)  # not the NSM: the file's own ioctl answers (ENOTTY)
            return
        mem = sn.open_memory(self.listener, n.id, n.pid)  # checked after opening; used for all below
        try:
            raw = sn.read_memory(mem, n.args[2], NSM_RAW_BYTES)
            request_at, request_len, response_at, response_len = struct.unpack("4Q", raw)
            if request_len > NSM_REQUEST_MAX_SIZE:
                self._reply(n, error=errno.EMSGSIZE)
                return
            copied = self.nsm(sn.read_memory(mem, request_at, request_len))[:response_len]
            sn.check_valid(self.listener, n.id)  # the caller still waits: its memory is still the one
            sn.write_memory(mem, response_at, copied)
            sn.write_memory(
                mem, n.args[2], struct.pack("4Q", request_at, request_len, response_at, len(copied))
            )
        finally:
            os.close(mem)
        self._reply(n)

    def _socket(self, n: sn.Notification) -> None:
        kind = n.args[1]
        if kind & SOCK_TYPE_MASK != socket.SOCK_STREAM:
            self._reply(n, error=errno.ESOCKTNOSUPPORT)
            return
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM | (kind & socket.SOCK_NONBLOCK)) as made:
            made.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):  # the caller is gone
                sn.add_fd(self.listener, n.id, made.fileno(), cloexec=bool(kind & socket.SOCK_CLOEXEC))

    def _bind_or_connect(self, n: sn.Notification) -> None:
        length = min(n.args[2], 128)
        address = b""
        if length >= 2:
            mem = sn.open_memory(self.listener, n.id, n.pid)
            try:
                address = sn.read_memory(mem, n.args[1], length)
            finally:
                os.close(mem)
        family = struct.unpack_from("H", address)[0] if len(address) >= 2 else -1
        if family in (socket.AF_INET, socket.AF_INET6):  # an enclave has no network: lo is down at boot
            self._reply(n, error=errno.ENETUNREACH if n.nr == sn.SYS_CONNECT else errno.EADDRNOTAVAIL)
            return
        if family != AF_VSOCK:
            self._reply(n, proceed=True)
            return
        if len(address) < SOCKADDR_VM_BYTES:
            self._reply(n, error=errno.EINVAL)
            return
        _family, _reserved, port, cid = struct.unpack_from("HHII", address)
        if port > MAX_TCP_PORT:  # e.g. VMADDR_PORT_ANY: a listed limit of the stand-in, said on the console
            print(f"rehearsal enclave supervisor: vsock port {port:#x} has no TCP port", file=sys.stderr)
            self._reply(n, error=errno.EINVAL)
            return
        with socket.socket(
            fileno=sn.take_fd(self.listener, n.id, n.pid, n.args[0])
        ) as sock:  # closing it leaves the caller's
            self._carry_out(n, sock, cid, port)

    def _carry_out(self, n: sn.Notification, sock: socket.socket, cid: int, port: int) -> None:
        own = vsock_tcp.tcp_address(self.cid, 0)[0]
        if n.nr == sn.SYS_BIND and cid not in (VMADDR_CID_ANY, self.cid):
            self._reply(n, error=errno.EADDRNOTAVAIL)  # vsock binds this machine's CID only
            return
        try:
            if n.nr == sn.SYS_BIND:
                sock.bind((own, port))
            else:
                if sock.getsockname()[1] == 0:
                    sock.bind((own, 0))
                sock.connect(vsock_tcp.tcp_address(cid, port))
        except vsock_tcp.VsockOverTcpError:
            self._reply(n, error=errno.EHOSTUNREACH)
        except OSError as error:
            self._reply(n, error=error.errno or errno.EIO)
        else:
            self._reply(n)

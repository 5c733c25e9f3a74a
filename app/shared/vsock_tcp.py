"""vsock over TCP, for the first-boot rehearsal only: one loopback address per CID, one rule, stdlib only.

The rehearsal (`make rehearse`) boots the parent under systemd-nspawn, where there is no vsock loopback.
When `NITRO_DEMO_VSOCK_OVER_TCP` holds the CID of the machine a process runs on (3 for the parent, the
enclave's CID for the software enclave), `app.shared.transport` maps every vsock address onto TCP:

- connect `vsock://C:P`   -> TCP `127.0.0.C:P`;
- listen  `vsock://any:P` -> TCP `127.0.0.<own CID>:P` (vsock binds a port on this machine's CID only);
- listen  `vsock://C:P`   -> TCP `127.0.0.C:P` (vsock-proxy binds CID 3 explicitly).

So the parent's ports (log sink 5005, vsock-proxy 8000, enclave heartbeat 9000 on 127.0.0.3) and the
enclave's (5000 on 127.0.0.16) never collide, and a wrong CID fails to connect as it would on Nitro. Unset or
empty, nothing changes. A listed deviation of the rehearsal (docs/rehearsal.md); never set on a real host.
The rehearsal's stand-ins (vsock-proxy, nitro-cli) use this same file, copied into the rehearsed root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV_VSOCK_OVER_TCP = "NITRO_DEMO_VSOCK_OVER_TCP"
# 127.0.0.0/8 is all loopback; one octet per CID keeps the rule readable. CIDs 0-2 are never machines here.
MIN_CID = 3
MAX_CID = 254


class VsockOverTcpError(ValueError):
    """A CID that has no TCP address under the rehearsal's mapping."""


def local_cid(environ: Mapping[str, str] | None = None) -> int | None:
    """This machine's CID when the mapping is on, else None."""
    raw = (os.environ if environ is None else environ).get(ENV_VSOCK_OVER_TCP, "")
    if not raw:
        return None
    if not raw.isdigit():
        raise VsockOverTcpError(f"{ENV_VSOCK_OVER_TCP} must be this machine's CID, got {raw!r}")
    return checked_cid(int(raw))


def checked_cid(cid: int) -> int:
    if not MIN_CID <= cid <= MAX_CID:
        raise VsockOverTcpError(
            f"CID {cid} has no TCP address in the rehearsal's vsock-over-TCP mapping "
            f"(CIDs {MIN_CID}-{MAX_CID} map to 127.0.0.<CID>)"
        )
    return cid


def tcp_address(cid: int, port: int) -> tuple[str, int]:
    """The TCP address standing in for vsock (cid, port)."""
    return (f"127.0.0.{checked_cid(cid)}", port)


def cid_of(host: str) -> int | None:
    """The CID a mapped TCP address stands for, or None if it is not one."""
    prefix, _, last = host.rpartition(".")
    if prefix != "127.0.0" or not last.isdigit():
        return None
    cid = int(last)
    return cid if MIN_CID <= cid <= MAX_CID else None

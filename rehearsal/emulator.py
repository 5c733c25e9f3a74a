"""The rehearsal's AWS APIs: local mode's emulator (moto: KMS, SQS, S3, SSM) with every KMS call authorized by
the key's own policy (`app.local.kms_enforcement`, the same entry point local mode uses), so the rehearsal
enforces the very policy the template deploys, rendered with the local principals and the signalled pin.

Run inside the rehearsal's network namespace: `python -m rehearsal.emulator --pki DIR` prints its endpoints as
one JSON line: `http`, `https`, and `kms_keepalive`, the keep-alive HTTPS front (rehearsal.keepalive) the
enclave's KMS calls go to.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from app.local.emulator import TLS_HOSTNAME, Emulator, speed_up_moto_clock
from app.local.emulator import tls_context as local_tls_context
from app.local.kms_enforcement import install_policy_enforcement
from app.local.software_nsm import LocalPki
from app.shared import logs
from rehearsal import keepalive


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    p = argparse.ArgumentParser(prog="python -m rehearsal.emulator", description=__doc__)
    p.add_argument("--pki", type=Path, required=True, help="directory written by LocalPki.save()")
    args = p.parse_args(argv)
    pki = LocalPki.load(args.pki)
    install_policy_enforcement(pki.root_certificate_der)
    speed_up_moto_clock()
    tls = local_tls_context(pki, args.pki)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Emulator(tls) as endpoints:
        front = keepalive.start(endpoints.http, tls)
        ready = {"http": endpoints.http, "https": endpoints.https}
        ready["kms_keepalive"] = f"https://{TLS_HOSTNAME}:{front.server_address[1]}"
        print(json.dumps(ready, separators=(",", ":")), flush=True)
        stop.wait()
        front.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cards through the stand-ins' whole enclave path: EIF built by nitro-cli, software enclave started by
run-enclave, KMS reached only through the vsock-proxy stand-in (vsock over TCP), the real relay.

The emulator is local mode's (its pin is the PCR0 build-enclave printed); the harness's own emulator and the
template's key policy are the rehearsal's, not this test's.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path

from app.local import processes
from app.local.processes import ChildSpec
from app.local.provision import provision
from app.local.software_nsm import LocalPki, measure_enclave_sources
from app.local.stack import RELAY_LOCAL_ENV, Endpoints, StackInfo
from app.shared import deployment, vsock_tcp
from rehearsal.run import KMS_HOST
from tests.local.pipeline_helpers import collect, send
from tests.rehearsal.standin_helpers import (
    REPO_ROOT,
    build_enclave_image,
    copy_repo_app,
    daemon,
    docker_daemon,
    install_packages,
    make_root,
    needs_linux,
    run,
    settings,
    short_tmp,
)

pytestmark = needs_linux

OVER_TCP = {vsock_tcp.ENV_VSOCK_OVER_TCP: "3"}
ALLOWLIST = REPO_ROOT / "infra/constructs/host/vsock-proxy.yaml"
CARDS = ["4111111111111111", "5555555555554444", "378282246310005"]


@contextlib.contextmanager
def emulator(run_dir: Path, pki: Path) -> Iterator[Endpoints]:
    spec = ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki), "--tls-name", KMS_HOST))
    with processes.running(spec, run_dir, processes.has_ready_line) as child:
        ready = json.loads(child.first_line() or "{}")
        yield Endpoints(http=ready["http"], https=ready["https"])


def test_cards_decrypt_through_vsock_proxy_with_the_configured_workers() -> None:
    with short_tmp() as scratch:
        pki = scratch / "pki"
        LocalPki.generate().save(pki)
        with emulator(scratch / "run", pki) as endpoints:
            kms = settings(emulator_https_url=endpoints.https)
            root = make_root(scratch, kms)
            install_packages(root)
            (root / "opt/rehearsal").mkdir(parents=True)
            (root / "opt/rehearsal/pki").symlink_to(pki)
            (root / "dev/nitro_enclaves").touch()
            (root / "etc/nitro_enclaves/allocator.yaml").write_text("---\nmemory_mib: 3072\ncpu_count: 2\n")
            (root / "etc/nitro_enclaves/vsock-proxy.yaml").write_text(
                ALLOWLIST.read_text().replace("${AWS::Region}", "us-east-1")
            )
            assert run(root, "/usr/bin/nitro-enclaves-allocator").returncode == 0
            workers = ("--num_workers", str(deployment.KMS_CONNECTIONS))
            proxy_args = ("8000", "kms.us-east-1.amazonaws.com", "443", *workers)
            with docker_daemon(root), daemon(root, "/usr/bin/vsock-proxy", *proxy_args, env=OVER_TCP):
                build_enclave_image(root, copy_repo_app(scratch / "app"))
                eif = root / "enclave.eif"
                build = ("--docker-uri", "nitro-enclave-demo-enclave:latest", "--output-file", str(eif))
                built = run(root, "/usr/bin/nitro-cli", "build-enclave", *build, env={"HOME": str(root)})
                assert built.returncode == 0, built.stderr
                cid = str(random.randint(100, 250))
                args = ("--eif-path", str(eif), "--cpu-count", "2", "--memory", "3072", "--enclave-cid", cid)
                started = run(root, "/usr/bin/nitro-cli", "run-enclave", *args, env=OVER_TCP)
                assert started.returncode == 0, started.stderr
                try:
                    info = StackInfo(
                        scratch,
                        endpoints,
                        provision(endpoints.http, pins=[measure_enclave_sources(REPO_ROOT).hex()]),
                        f"vsock://{cid}:5000",
                        "",
                        "",
                    )
                    relay_env = {**info.environment(), **RELAY_LOCAL_ENV, **OVER_TCP}
                    relay = ChildSpec("relay", "app.parent", ("run",), relay_env)
                    with processes.running(relay, scratch / "run", lambda _child: True):
                        results = collect(info, send(info, CARDS))
                finally:
                    run(root, "/usr/bin/nitro-cli", "terminate-enclave", "--all")
            proxy_log = (root / "vsock-proxy.log").read_text()
        assert not results.missing
        assert [outcome.matches for outcome in results.outcomes] == [True] * len(CARDS)
        assert f"{deployment.KMS_CONNECTIONS} workers" in proxy_log
        assert "workers busy" not in proxy_log

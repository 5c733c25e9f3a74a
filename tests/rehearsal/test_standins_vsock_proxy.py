"""vsock-proxy stand-in: the allowlist at start, and a pool of --num_workers where connection N+1 waits."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.shared import deployment, vsock_tcp
from tests.rehearsal.standin_helpers import (
    REPO_ROOT,
    daemon,
    free_port,
    install_packages,
    make_root,
    needs_linux,
    run,
    settings,
    wait_for,
)

pytestmark = needs_linux

ALLOWLIST = REPO_ROOT / "infra/constructs/host/vsock-proxy.yaml"
KMS = ("kms.us-east-1.amazonaws.com", "443")
BUSY = "workers busy"


class Upstream:
    """Stands for the emulator's TLS port: echoes, and counts the connections it has accepted."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(data)


def proxy_root(tmp_path: Path, upstream_port: int, region: str = "us-east-1") -> Path:
    root = make_root(tmp_path, settings(emulator_https_url=f"https://127.0.0.1:{upstream_port}"))
    install_packages(root, "aws-nitro-enclaves-cli")
    allowlist = ALLOWLIST.read_text().replace("${AWS::Region}", region)
    (root / "etc/nitro_enclaves/vsock-proxy.yaml").write_text(allowlist)
    return root


@contextlib.contextmanager
def running_proxy(root: Path, workers: int) -> Iterator[tuple[tuple[str, int], Path]]:
    port = free_port("127.0.0.3")
    args = (
        str(port),
        *KMS,
        "--config",
        "/etc/nitro_enclaves/vsock-proxy.yaml",
        "--num_workers",
        str(workers),
    )
    with daemon(root, "/usr/bin/vsock-proxy", *args, env={vsock_tcp.ENV_VSOCK_OVER_TCP: "3"}):
        log = root / "vsock-proxy.log"
        # Its start line comes after the listen; a probe connection would itself reach the upstream.
        wait_for(lambda: "workers; vsock" in log.read_text(), "the vsock-proxy stand-in to listen")
        yield vsock_tcp.tcp_address(3, port), log


def echoed(conn: socket.socket) -> bool:
    conn.sendall(b"ping")
    return conn.recv(4) == b"ping"


def test_a_host_missing_from_the_allowlist_is_refused_at_start(tmp_path: Path) -> None:
    root = proxy_root(tmp_path, 9, region="eu-west-1")
    done = run(root, "/usr/bin/vsock-proxy", "8000", *KMS, "--config", "/etc/nitro_enclaves/vsock-proxy.yaml")
    assert done.returncode == 1
    assert (
        'Error: "Error at checking the allowlist: The given address and port are not allowed"' in done.stderr
    )


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    done = run(proxy_root(tmp_path, 9), "/usr/bin/vsock-proxy", "8000", *KMS, "-w", "0")
    assert done.returncode == 1
    assert "Number of workers must not be 0" in done.stderr


@pytest.mark.parametrize("connections", [5, 32])
def test_four_workers_serve_four_and_connection_five_waits_until_one_closes(
    tmp_path: Path, connections: int
) -> None:
    upstream = Upstream()
    with running_proxy(proxy_root(tmp_path, upstream.port), workers=4) as (address, log):
        clients = [socket.create_connection(address, timeout=30) for _ in range(4)]
        assert all(echoed(c) for c in clients)
        waiting = [socket.create_connection(address, timeout=30) for _ in range(connections - 4)]
        wait_for(lambda: BUSY in log.read_text(), "the proxy to accept a connection it has no worker for")
        assert upstream.accepted == 4  # the others were accepted by the proxy, and go nowhere yet
        clients[0].close()
        assert echoed(waiting[0])  # a worker came free: the first waiting connection goes through
        for conn in clients[1:] + waiting:
            conn.close()


def test_with_as_many_workers_as_the_enclave_holds_connections_none_waits(tmp_path: Path) -> None:
    upstream = Upstream()
    with running_proxy(proxy_root(tmp_path, upstream.port), workers=deployment.KMS_CONNECTIONS) as (
        address,
        log,
    ):
        clients = [socket.create_connection(address, timeout=30) for _ in range(deployment.KMS_CONNECTIONS)]
        assert all(echoed(c) for c in clients)
        assert upstream.accepted == deployment.KMS_CONNECTIONS
        assert BUSY not in log.read_text()
        for conn in clients:
            conn.close()

"""The local stack: emulator, provisioned key and queues, software enclave and relay, as child processes.

`LocalStack` is a context manager: everything it starts is stopped on exit, in reverse order. It wires
processes and environment only; the programs themselves are the real ones. `supervise()` restarts a
dead enclave or relay with back-off, as systemd does on the host (`serve` turns it on).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from app.local import processes
from app.local.processes import Child, ChildSpec
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, Provisioned, provision
from app.local.software_nsm import ATTESTATION_ROOT_FILE, LocalPki, measure_enclave_sources
from app.local.supervisor import Supervisor, Watched
from app.shared import settings

ENCLAVE_READY_TIMEOUT_S = 20.0
# Local mode long-polls for 2 s instead of 20 so that SIGTERM drains the relay within a couple of seconds.
RELAY_LOCAL_ENV = {"RELAY_WAIT_TIME_S": "2"}
RELAY_STOP_GRACE_S = 25.0  # above any long poll: a draining relay is never SIGKILLed
ENCLAVE_LOG_SINK = "enclave-log-sink"


@dataclass(frozen=True)
class Endpoints:
    http: str
    https: str

    @property
    def https_port(self) -> int:
        return int(self.https.rsplit(":", 1)[1])


@dataclass(frozen=True)
class StackInfo:
    """What a user (or a test) needs to talk to a running local stack."""

    run_dir: Path
    endpoints: Endpoints
    resources: Provisioned
    enclave_url: str
    pin_hex: str
    enclave_log_url: str  # the parent-side sink of the enclave's own log channel

    @property
    def enclave_log_file(self) -> Path:
        """Where the sink writes the enclave's log lines (the journal's job on AWS)."""
        return self.run_dir / f"{ENCLAVE_LOG_SINK}.stdout.log"

    def environment(self) -> dict[str, str]:
        """The variables the producer and relay read (boto3 honours AWS_ENDPOINT_URL)."""
        return {
            "AWS_REGION": self.resources.region,
            "AWS_DEFAULT_REGION": self.resources.region,
            "AWS_ENDPOINT_URL": self.endpoints.http,
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            settings.ENV_CARDS_QUEUE_URL: self.resources.cards_queue_url,
            settings.ENV_RESULTS_QUEUE_URL: self.resources.results_queue_url,
            settings.ENV_DEAD_LETTER_QUEUE_URL: self.resources.dead_letter_queue_url,
            settings.ENV_KMS_KEY_ID: self.resources.key_arn,  # by ARN, as on AWS: never an alias
            settings.ENV_ENCRYPTION_CONTEXT: json.dumps(dict(settings.DEFAULT_ENCRYPTION_CONTEXT)),
            settings.ENV_ENCLAVE_URL: self.enclave_url,
            # Results are signed by the software enclave, whose documents chain to the local PKI's root.
            settings.ENV_ATTESTATION_ROOT_PEM: str(self.run_dir / "pki" / ATTESTATION_ROOT_FILE),
        }


class LocalStack:
    """`with LocalStack(run_dir, tamper=...) as info:` starts emulator, enclave and relay; stops them all."""

    def __init__(self, run_dir: Path, *, tamper: bool = False, relay: bool = True):
        self.run_dir = run_dir
        self.tamper = tamper
        self._with_relay = relay
        self._exit = contextlib.ExitStack()
        self._emulator: Child | None = None
        self._enclave: Child | None = None
        self._relay: Child | None = None
        self._lock = threading.RLock()  # a child's start/stop and the supervisor's restart never interleave
        self._supervisor: Supervisor | None = None
        self.info: StackInfo | None = None

    def __enter__(self) -> StackInfo:
        try:
            self.info = self._start()
        except BaseException:
            self.close()
            raise
        return self.info

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the supervisor, the relay (it drains), then the enclave, then the emulator."""
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None
        self.stop_relay()
        self.stop_enclave()
        self._exit.close()

    def _start(self) -> StackInfo:
        pki_dir = self.run_dir / "pki"
        LocalPki.generate().save(pki_dir)
        pin = measure_enclave_sources(processes.REPO_ROOT).hex()
        emulator = self._exit.enter_context(
            processes.running(
                ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki_dir))),
                self.run_dir,
                processes.has_ready_line,
            )
        )
        self._emulator = emulator
        ready = json.loads(emulator.first_line() or "{}")
        endpoints = Endpoints(http=ready["http"], https=ready["https"])
        enclave_url = f"tcp://{processes.LOOPBACK}:{processes.free_port()}"
        log_port = processes.free_port()
        log_url = f"tcp://{processes.LOOPBACK}:{log_port}"
        self._exit.enter_context(  # the same log channel as on Nitro, with TCP for vsock
            processes.running(
                ChildSpec(ENCLAVE_LOG_SINK, "app.parent", ("logs", "--listen", log_url)),
                self.run_dir,
                processes.accepts_on(log_port),
            )
        )
        resources = provision(endpoints.http, pins=[pin])  # the key policy pins the enclave's measurement
        info = StackInfo(self.run_dir, endpoints, resources, enclave_url, pin, log_url)
        self.info = info
        self.start_enclave(tamper=self.tamper)
        if self._with_relay:
            self.start_relay()
        return info

    def pids(self) -> dict[str, int]:
        """The running children by role (the benchmark accounts for their CPU)."""
        children = {"emulator": self._emulator, "enclave": self._enclave, "relay": self._relay}
        return {name: child.process.pid for name, child in children.items() if child is not None}

    def supervise(self) -> None:
        """From now on, restart the enclave or relay whenever one dies (not when we stop it)."""
        watched = [
            Watched("enclave", lambda: self._enclave, lambda: self.start_enclave(tamper=self.tamper)),
            Watched("relay", lambda: self._relay, self.start_relay),
        ]
        self._supervisor = Supervisor(watched, self._lock).start()

    def child(self, name: str) -> Child | None:
        """The running enclave or relay child, if any (for tests and status)."""
        return {"enclave": self._enclave, "relay": self._relay}[name]

    def _require_info(self) -> StackInfo:
        if self.info is None:
            raise RuntimeError("the stack is not started")
        return self.info

    def enclave_spec(self, *, tamper: bool) -> ChildSpec:
        info = self._require_info()
        args = [
            "--listen", info.enclave_url, "--pki", str(self.run_dir / "pki"),
            "--kms-endpoint", info.endpoints.https,
            "--egress", f"tcp://{processes.LOOPBACK}:{info.endpoints.https_port}",
            "--log-url", info.enclave_log_url,
        ]  # fmt: skip
        tail = ["--tamper"] if tamper else []
        # No AWS settings of its own: credentials come with each request, as on Nitro.
        return ChildSpec("enclave", "app.local.enclave", (*args, *tail), drop_env_prefixes=("AWS_",))

    def start_enclave(self, *, tamper: bool = False) -> Child:
        """Start (or restart) the software enclave and wait until it answers a ping."""
        info = self._require_info()
        with self._lock:
            self.stop_enclave()
            child = processes.start(self.enclave_spec(tamper=tamper), self.run_dir)
            self._enclave = child
            ping = ChildSpec("ping", "app.parent", ("ping",), info.environment())
            processes.wait_ready(child, processes.command_succeeds(ping), ENCLAVE_READY_TIMEOUT_S)
            return child

    def kill_enclave(self) -> None:
        """SIGKILL the enclave (a crash, for tests); the relay must keep every message."""
        with self._lock:
            if self._enclave is not None:
                self._enclave.kill()
                self._enclave = None

    def stop_enclave(self) -> None:
        with self._lock:
            enclave, self._enclave = self._enclave, None
            if enclave is not None:
                enclave.stop()

    def start_relay(self) -> Child:
        info = self._require_info()
        with self._lock:
            self.stop_relay()
            spec = ChildSpec("relay", "app.parent", ("run",), {**info.environment(), **RELAY_LOCAL_ENV})
            self._relay = processes.start(spec, self.run_dir)
            return self._relay

    def stop_relay(self) -> int | None:
        """SIGTERM the relay (it drains in-flight batches) and return its exit status."""
        with self._lock:
            relay, self._relay = self._relay, None
            return relay.stop(RELAY_STOP_GRACE_S) if relay is not None else None


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for in-process code (the producer; the rehearsal's Lambda handlers) and restore them
    afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old

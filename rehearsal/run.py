"""One rehearsal's bookkeeping and its host-side services: the run directory and its report lines, the
cached wheelhouse, base root and build-image layer, and the services every host and build reaches on
loopback (the emulator, the SignalResource stand-in, the CodeBuild stand-in). Every step has a name; a
failure raises RehearsalFailed naming the step and the reason.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from app.local import processes
from app.local.processes import ChildSpec
from app.local.software_nsm import LocalPki
from infra.constants import REPO_ROOT
from rehearsal import python_base, rootfs, wheelhouse
from rehearsal.cfn import PSEUDO
from rehearsal.cloud import STACK_ID
from rehearsal.template import Synthesized, synth

# The enclave's image dials KMS by its regional name (its Env sets no endpoint), through vsock-proxy to the
# emulator, whose certificate must name it.
KMS_HOST = f"kms.{PSEUDO['AWS::Region']}.amazonaws.com"

CACHE = REPO_ROOT / ".cache" / "rehearsal"
SIGNALS_PORT = 8085
CODEBUILD_PORT = 8086
T = TypeVar("T")


class RehearsalFailed(RuntimeError):
    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass
class Run:
    """One run's directory and its report lines."""

    dir: Path
    started: float

    def say(self, text: str) -> None:
        print(f"[rehearsal {time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def step(self, name: str, action: Callable[[], T]) -> T:
        self.say(f"step: {name}")
        try:
            return action()
        except RehearsalFailed:
            raise
        except Exception as error:
            raise RehearsalFailed(name, f"{type(error).__name__}: {error}") from error


def new_run() -> Run:
    name = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = CACHE / "runs" / name
    return Run(dir=run_dir, started=time.monotonic())


@dataclass(frozen=True)
class Services:
    http: str  # the emulator (moto, keep-alive)
    https: str  # its KMS listener on https://localhost:<port>
    signals: str  # SignalResource stand-in
    signals_record: Path
    stack_state: Path
    codebuild: str  # CodeBuild stand-in
    codebuild_config: Path

    def ports(self) -> list[int]:
        return [int(url.rsplit(":", 1)[1].rstrip("/")) for url in (self.http, self.https, self.signals)]


@contextlib.contextmanager
def host_services(
    run: Run, synthesized: Synthesized, codebuild_base: dict[str, object]
) -> Iterator[Services]:
    """The emulator, the SignalResource and the CodeBuild stand-ins (this process runs in the namespace)."""
    with contextlib.ExitStack() as stack:
        pki = run.dir / "pki"
        LocalPki.generate().save(pki)
        emulator = stack.enter_context(
            processes.running(
                ChildSpec("emulator", "app.local.emulator", ("--pki", str(pki), "--tls-name", KMS_HOST)),
                run.dir,
                processes.has_ready_line,
            )
        )
        ready = json.loads(emulator.first_line() or "{}")
        record, state = run.dir / "signals.jsonl", run.dir / "stack-state.json"
        resources = ",".join(synthesized.template["Resources"])
        signal_args = ("--listen", f"127.0.0.1:{SIGNALS_PORT}", "--stack", PSEUDO["AWS::StackName"],
                       "--stack-id", STACK_ID, "--resources", resources, "--state", str(state),
                       "--record", str(record))  # fmt: skip
        stack.enter_context(
            processes.running(
                ChildSpec("cfn-signals", "rehearsal.cfn_signals", signal_args),
                run.dir,
                processes.has_ready_line,
            )
        )
        config = run.dir / "codebuild.json"
        inherited = codebuild_base.get("build_env")
        build_env = {**(inherited if isinstance(inherited, dict) else {}), "AWS_ENDPOINT_URL": ready["http"]}
        written = {**codebuild_base, "emulator": ready["http"], "build_env": build_env, "projects": {}}
        config.write_text(json.dumps(written, indent=2), encoding="utf-8")
        codebuild_args = ("--listen", f"127.0.0.1:{CODEBUILD_PORT}", "--config", str(config))
        stack.enter_context(
            processes.running(
                ChildSpec("codebuild", "rehearsal.codebuild", codebuild_args),
                run.dir,
                processes.has_ready_line,
            )
        )
        yield Services(
            http=ready["http"],
            https=ready["https"],
            signals=f"http://127.0.0.1:{SIGNALS_PORT}",
            signals_record=record,
            stack_state=state,
            codebuild=f"http://127.0.0.1:{CODEBUILD_PORT}",
            codebuild_config=config,
        )
        stack.close()


def cached(run: Run) -> tuple[Path, Path]:
    """The wheelhouse and the base rootfs, made on first use: before the namespace, which has no network
    (the outer run also makes image_inputs then)."""
    wheels = run.step("wheelhouse (pip download, cached)", lambda: wheelhouse.ensure(CACHE))
    base = run.step("root filesystem (debootstrap bookworm, cached)", lambda: rootfs.base(CACHE, wheels))
    return wheels, base


def image_inputs(run: Run, base: Path) -> tuple[Path, Path]:
    """What the docker stand-in builds the enclave image from, cached: the python:3.11-slim stand-in layer
    (from the base rootfs's Debian packages) and the wheels the image's requirements.txt pins."""
    python = run.step(
        "python:3.11-slim stand-in layer (Debian's packages, cached)", lambda: python_base.ensure(CACHE, base)
    )
    wheels = run.step(
        "enclave image wheelhouse (pip download --require-hashes, cached)",
        lambda: wheelhouse.ensure_enclave(CACHE),
    )
    return python, wheels


def prepare(run: Run) -> tuple[Synthesized, Path, Path, Path]:
    """Synth, the caches, the build image's layer: (template, wheelhouse, base root, build layer)."""
    run.dir.mkdir(parents=True, exist_ok=True)
    synthesized = run.step("synthesize the stack (cdk synth)", lambda: synth(run.dir / "cdk.out"))
    wheels, base = cached(run)
    layer = run.step(
        "build image layer (the measuring venv over the base, cached)",
        lambda: rootfs.builder_layer(CACHE, base, wheels),
    )
    return synthesized, wheels, base, layer

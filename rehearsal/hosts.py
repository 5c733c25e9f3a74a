"""An enclave host of the Auto Scaling group, booted as EC2 would launch it from the launch template: its
own root (an overlay over the cached Debian base, so a boot costs no copy), the stand-ins, the rendered user
data run by the cloud-final stand-in, its own IMDS (its own instance id) in its own network namespace,
then systemd-nspawn --boot. `wait_for_signal` waits for the host's own SignalResource call (UniqueId
starting with its instance id), as CloudFormation counts the group's signals per instance.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.local import processes
from app.local.processes import ChildSpec
from app.local.software_nsm import ATTESTATION_ROOT_FILE
from app.shared import settings as settings_module
from rehearsal import cfn_signals, rootfs
from rehearsal.cfn import PSEUDO
from rehearsal.cloud import Cloud
from rehearsal.codebuild_run import Overlay
from rehearsal.container import Container
from rehearsal.netns import IMDS_ADDRESS
from rehearsal.standins import StandinSettings, enclaves, install_standins, nspawn_arguments
from rehearsal.wheelhouse import CONTAINER_WHEELHOUSE

SIGNAL_TIMEOUT_S = 900.0
POLL_S = 2.0
CONSOLE_TAIL_LINES = 12


class HostFailed(RuntimeError):
    """The host did not signal SUCCESS: its FAILURE signal, or why no signal came."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass(frozen=True)
class HostSpec:
    name: str  # host-1, host-2: the directory and machine name
    instance_id: str
    netns: Path
    own_namespace: bool  # False: the services' namespace (IMDS started there directly)


@dataclass(frozen=True)
class Endpoints:
    http: str  # the emulator, AWS_ENDPOINT_URL
    https: str  # its KMS listener, for the enclave through vsock-proxy
    signals: str  # the SignalResource stand-in, AWS_ENDPOINT_URL_CLOUDFORMATION


@dataclass
class Host:
    spec: HostSpec
    box: Container
    run_dir: Path

    @property
    def root(self) -> Path:
        return self.box.root


def _imds(spec: HostSpec, cloud: Cloud, run_dir: Path) -> contextlib.AbstractContextManager[processes.Child]:
    role_id = next(
        i for i, r in cloud.synthesized.resources("AWS::IAM::Role").items()
        if "ec2.amazonaws.com" in str(r["Properties"]["AssumeRolePolicyDocument"])
    )  # fmt: skip
    args = ["--listen", f"{IMDS_ADDRESS}:80", "--role", cloud.refs[role_id], "--region", cloud.region,
            "--account", PSEUDO["AWS::AccountId"], "--instance-id", spec.instance_id]  # fmt: skip
    if spec.own_namespace:
        args += ["--netns", str(spec.netns)]
    return processes.running(ChildSpec(f"imds-{spec.name}", "rehearsal.imds", tuple(args)), run_dir,
                             processes.has_ready_line)  # fmt: skip


@contextlib.contextmanager
def booted(
    spec: HostSpec,
    *,
    cloud: Cloud,
    user_data: str,
    base: Path,
    wheels: Path,
    endpoints: Endpoints,
    run_dir: Path,
) -> Iterator[Host]:
    """The host running (systemd-nspawn --boot) for the block; powered off and unmounted after."""
    host_dir = run_dir / spec.name
    settings = StandinSettings(
        region=cloud.region,
        emulator_https_url=endpoints.https,
        instance_id=spec.instance_id,
    )
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(Overlay([base], host_dir))
        install_standins(root, settings=settings)
        environment = {
            "AWS_ENDPOINT_URL": endpoints.http,
            "AWS_ENDPOINT_URL_CLOUDFORMATION": endpoints.signals,
            # A deviation (deviations.py, "nitro-demo send"): the software enclave's signed results chain
            # to the local PKI's root, so `nitro-demo send` verifies them against it.
            settings_module.ENV_ATTESTATION_ROOT_PEM: f"{settings.pki_dir}/{ATTESTATION_ROOT_FILE}",
        }
        rootfs.configure(root, user_data=user_data, default_environment=environment)
        stack.enter_context(_imds(spec, cloud, run_dir))
        box = Container(
            root,
            machine=f"{spec.name}-{spec.netns.name}"[:60],
            netns=spec.netns,
            binds_ro=[(wheels, CONTAINER_WHEELHOUSE)],
            console=host_dir / "console.log",
            extra_args=nspawn_arguments(settings, pki_host_dir=run_dir / "pki"),
        )
        box.start()
        stack.callback(box.stop)
        yield Host(spec, box, host_dir)


def wait_for_signal(host: Host, record: Path) -> cfn_signals.ResourceSignal:
    """The host's first SUCCESS or FAILURE signal; HostFailed if its user data ends without one."""
    deadline = time.monotonic() + SIGNAL_TIMEOUT_S
    box, mine = host.box, host.spec.instance_id
    while time.monotonic() < deadline:
        found = [s for s in cfn_signals.read_signals(record) if s.unique_id.startswith(mine)]
        if found:
            return found[0]
        if not box.alive():
            raise HostFailed("boot", f"{host.spec.name}: the container stopped (see {box.console})")
        state = box.unit_state(rootfs.CLOUD_FINAL_UNIT)
        if state.startswith("failed") or state == "active success":
            time.sleep(POLL_S)  # a last signal may still be in flight
            if not any(s.unique_id.startswith(mine) for s in cfn_signals.read_signals(record)):
                tail = box.journal(rootfs.CLOUD_FINAL_UNIT)
                raise HostFailed(
                    "user data",
                    f"{host.spec.name}: {rootfs.CLOUD_FINAL_UNIT} is {state} without a signal:\n{tail}\n"
                    f"{enclave_console(box)}",
                )
        time.sleep(POLL_S)
    raise HostFailed("boot signal", f"{host.spec.name}: no signal within {SIGNAL_TIMEOUT_S:g} s")


def failed_units(box: Container) -> str:
    parts = [f"failed unit {unit}, journal tail:\n{box.journal(unit, 15)}" for unit in box.failed_units()]
    return "\n".join([*parts, enclave_console(box)])


def enclave_console(box: Container, lines: int = CONSOLE_TAIL_LINES) -> str:
    """The last lines of the latest enclave's console (the image's command's own output), and how many
    enclaves the host started: why an enclave died is said there, not in any unit's journal."""
    directory = box.root / enclaves.CONSOLE_DIR.lstrip("/")
    found = directory.glob(enclaves.CONSOLE_NAME.format(enclave_id="*"))
    consoles = sorted(found, key=lambda path: path.stat().st_mtime)
    if not consoles:
        return "no enclave was started (no enclave console)"
    tail = consoles[-1].read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    started = f"{len(consoles)} enclave(s) started; the console of the last, {consoles[-1].name}"
    return f"{started}, tail:\n" + "\n".join(tail)

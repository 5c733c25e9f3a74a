"""nitro-cli's enclave commands for the stand-in: run-enclave, describe-enclaves, terminate-enclave.

Contract (aws/aws-nitro-enclaves-cli at 2950b36): argument rules from `src/common/commands_parser.rs`
(`parse_enclave_cid`: 0 auto-assigns, 1-2 and u32::MAX are well-known, 3 is the parent); the 4x EIF size rule
(E26) and hugepage memory (E27) from `src/enclave_proc/resource_manager.rs`; CPUs from the allocator's pool
(E22, `cpu_info.rs`) and whole cores (the driver's NE_ERR_FULL_CORES_NOT_USED); `run-enclave` returns once the
enclave sends its heartbeat (0xB7, echoed) to the parent's vsock port 9000 (`enclave_ready`). JSON field names
from `src/common/json_output.rs`, pretty-printed as serde does; ids `i-<instance>-enc<slot hex>`
(`enclave_proc/utils.rs`). Instead of booting a VM it unpacks the EIF and starts the software enclave
(software_enclave.py: the init stand-in, which runs the EIF's Cmd in the EIF's root) detached, under the
venv's python, with nothing of this process's environment. Its stdout and stderr, the enclave's console, go
to CONSOLE_DIR/CONSOLE_NAME (the real console is read with `nitro-cli console`, a debug-mode enclave's only).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.shared import vsock_tcp
from rehearsal.standins import eif, host
from rehearsal.standins.nitro_errors import exit_with

STATE_DIR = "/run/nitro_enclaves/rehearsal-enclaves"
POOL_FILE = "/run/nitro_enclaves/rehearsal-pool.json"
PARENT_CID = 3
HEARTBEAT_PORT = 9000
HEARTBEAT = b"\xb7"
BOOT_TIMEOUT_S = 60.0
EIF_SIZE_RATIO = 4
MIB = 1 << 20
TERMINATE_WAIT_S = 10.0
CONSOLE_DIR = "/var/log/nitro_enclaves"
CONSOLE_NAME = "rehearsal-enclave-{enclave_id}.console"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> list[dict[str, Any]]:
    """Enclaves whose process lives; a dead one's record is dropped, as its enclave process would be gone."""
    found = []
    for record in sorted(host.path(STATE_DIR).glob("*.json")):
        state = json.loads(record.read_text(encoding="utf-8"))
        if _alive(state["ProcessID"]):
            found.append(state)
        else:
            record.unlink(missing_ok=True)
            shutil.rmtree(host.path(f"{STATE_DIR}/{state['EnclaveID']}"), ignore_errors=True)
    return found


def checked_cid(text: str) -> int:
    if not text.isdigit():
        exit_with(3, f"`enclave-cid` is not a number ({text})")
    cid = int(text)
    if 0 < cid <= 2 or cid == 0xFFFFFFFF:
        exit_with(3, f"CID {cid} is a well-known CID, not to be used for enclaves")
    if cid == PARENT_CID:
        exit_with(3, f"CID {cid} is the CID of the parent VM, not to be used for enclaves")
    if cid > 0xFFFFFFFF:
        exit_with(3, f"CID {cid} is higher than the maximum supported (u32 max) for a vsock device")
    if cid == 0:
        cid = max([16, *(e["EnclaveCID"] + 1 for e in running())])
    try:
        return vsock_tcp.checked_cid(cid)
    except vsock_tcp.VsockOverTcpError as error:
        exit_with(3, f"rehearsal stand-in: {error}")


def _resources(cpu_count: int, memory_mib: int, threads_per_core: int) -> list[int]:
    pool_file = host.path(POOL_FILE)
    pool: dict[str, Any] = json.loads(pool_file.read_text()) if pool_file.exists() else {}
    pool.setdefault("memory_mib", 0)
    pool.setdefault("cpu_ids", [])
    taken = running()
    used_cpus = {cpu for e in taken for cpu in e["CPUIDs"]}
    free = [cpu for cpu in pool["cpu_ids"] if cpu not in used_cpus]
    if cpu_count > len(free):
        exit_with(22, f"Insufficient CPUs available (requested {cpu_count}, but maximum is {len(free)})")
    if cpu_count % threads_per_core:
        exit_with(33, "The enclave cannot start because full CPU cores have not been set")
    free_mib = pool["memory_mib"] - sum(e["MemoryMiB"] for e in taken)
    if memory_mib > free_mib:
        exit_with(
            27, f"User provided `memory` is {memory_mib} MB, more than the {free_mib} MB hugepage memory"
        )
    return free[:cpu_count]


def _check_memory(memory_mib: int, eif_path: Path) -> None:
    eif_size = eif_path.stat().st_size
    minimum = -(-eif_size // MIB) * EIF_SIZE_RATIO
    if EIF_SIZE_RATIO * eif_size > memory_mib * MIB:
        exit_with(26, f"User provided `memory` is {memory_mib} MB, but the EIF needs at least {minimum} MB")


def _next_slot() -> int:
    counter = host.path(f"{STATE_DIR}/.slots")
    slot = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.parent.mkdir(parents=True, exist_ok=True)
    counter.write_text(str(slot))
    return slot


def _wait_for_heartbeat(listener: socket.socket, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    listener.settimeout(0.5)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            exit_with(
                36, f"the software enclave exited with {child.returncode} before its heartbeat:\n{tail}"
            )
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            if conn.recv(1) == HEARTBEAT:
                conn.sendall(HEARTBEAT)
                return
    child.kill()
    exit_with(36, f"no heartbeat on vsock port {HEARTBEAT_PORT} within {BOOT_TIMEOUT_S:.0f} s")


def _heartbeat_listener() -> socket.socket:
    if vsock_tcp.local_cid() is None:
        host.fail(f"rehearsal stand-in nitro-cli: there is no vsock here; set {vsock_tcp.ENV_VSOCK_OVER_TCP}")
    return socket.create_server(vsock_tcp.tcp_address(PARENT_CID, HEARTBEAT_PORT))


def _start(eif_path: Path, enclave_id: str, cid: int, debug: bool) -> tuple[subprocess.Popen[bytes], Path]:
    config = host.settings()
    work = host.path(f"{STATE_DIR}/{enclave_id}")
    try:
        eif.unpack(eif_path, work)
    except eif.EifError as error:
        exit_with(35, str(error))
    console = host.path(f"{CONSOLE_DIR}/{CONSOLE_NAME.format(enclave_id=enclave_id)}")
    console.parent.mkdir(parents=True, exist_ok=True)
    command = [
        config.get("venv_python", host.VENV_PYTHON),
        str(Path(__file__).resolve().parent / "software_enclave.py"), "run",
        "--eif", str(eif_path.resolve()), "--work", str(work), "--cid", str(cid),
        "--pki", str(host.path(config["pki_dir"])),
        *(["--debug-mode"] if debug else []),
    ]  # fmt: skip
    with console.open("ab") as output:
        child = subprocess.Popen(  # noqa: S603 - fixed argument list
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env={},
            start_new_session=True, cwd="/",
        )  # fmt: skip
    return child, console


def run_enclave(
    eif_path: Path, *, cpu_count: int, memory_mib: int, cid_text: str, name: str | None, debug: bool
) -> int:
    machine = host.settings()["machine"]
    if not host.path("/dev/nitro_enclaves").exists():
        exit_with(19, "Could not open /dev/nitro_enclaves: the instance has no Nitro Enclaves device")
    if not eif_path.is_file():
        exit_with(19, f"File: '{eif_path}', failing operation: 'Open'.")
    cid = checked_cid(cid_text)
    name = name or eif_path.stem
    if any(e.get("EnclaveName") == name for e in running()):
        exit_with(58, f"an enclave named {name} is already running")
    _check_memory(memory_mib, eif_path)
    cpu_ids = _resources(cpu_count, memory_mib, machine["threads_per_core"])
    print("Start allocating memory...", file=sys.stderr, flush=True)
    listener = _heartbeat_listener()
    enclave_id = f"{host.settings().get('instance_id', 'i-0000000000000000')}-enc{_next_slot():x}"
    with listener:
        child, log = _start(eif_path, enclave_id, cid, debug)
        _wait_for_heartbeat(listener, child, log)
    header = eif.read_header(eif_path)
    info = {"EnclaveName": name, "EnclaveID": enclave_id, "ProcessID": child.pid, "EnclaveCID": cid,
            "NumberOfCPUs": cpu_count, "CPUIDs": cpu_ids, "MemoryMiB": memory_mib}  # fmt: skip
    state = {**info, "State": "RUNNING", "Flags": "DEBUG_MODE" if debug else "NONE"}
    host.write_json(
        host.path(f"{STATE_DIR}/{enclave_id}.json"), state | {"Measurements": header["Measurements"]}
    )
    print(
        f"Started enclave with enclave-cid: {cid}, memory: {memory_mib} MiB, cpu-ids: {cpu_ids}",
        file=sys.stderr,
    )
    print(json.dumps(info, indent=2))
    return 0


def describe_enclaves() -> int:
    fields = ("EnclaveName", "EnclaveID", "ProcessID", "EnclaveCID", "NumberOfCPUs", "CPUIDs", "MemoryMiB",
              "State", "Flags", "Measurements")  # fmt: skip
    print(json.dumps([{key: e[key] for key in fields} for e in running()], indent=2))
    return 0


def _terminate(state: dict[str, Any]) -> dict[str, Any]:
    """Stop it at once, as Nitro does: the enclave gets no signal to drain."""
    pid = state["ProcessID"]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + TERMINATE_WAIT_S
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    host.path(f"{STATE_DIR}/{state['EnclaveID']}.json").unlink(missing_ok=True)
    shutil.rmtree(host.path(f"{STATE_DIR}/{state['EnclaveID']}"), ignore_errors=True)
    print(f"Successfully terminated enclave {state['EnclaveID']}.", file=sys.stderr)
    return {"EnclaveName": state["EnclaveName"], "EnclaveID": state["EnclaveID"], "Terminated": True}


def terminate_enclave(enclave_id: str | None, name: str | None, every: bool) -> int:
    enclaves = running()
    if every:
        print(json.dumps([_terminate(e) for e in enclaves], indent=2))
        return 0
    matches = [e for e in enclaves if (name and e["EnclaveName"] == name) or e["EnclaveID"] == enclave_id]
    if not matches:
        if name:
            exit_with(58, f"no enclave named {name} is running")
        exit_with(40, f"no enclave with id {enclave_id} is running")
    print(json.dumps(_terminate(matches[0]), indent=2))
    return 0

"""How a Nitro Enclave starts its image, as code: what `nitro-cli build-enclave` keeps of the Docker image and
how the enclave's init runs it. Pure and stdlib only; read by the stand-in nitro-cli, the software init
(enclave_init.py) and the tests of the shipped Dockerfile.

Sources, each rule below cites its line:
- aws/aws-nitro-enclaves-cli `enclave_build/src/docker.rs` (2950b36), `extract_image` lines 266-284 and `load`
  lines 288-295: the image's Cmd, or only when there is no Cmd its Entrypoint, and its Env, each written one
  item a line; nothing else of the config (no WorkingDir, User, ports).
- aws/aws-nitro-enclaves-sdk-bootstrap `init/init.c` (f718dea): `main` lines 395-450 and `launch` lines
  272-299, in this order: the heartbeat 0xB7 to vsock 3:9000 and its echo (`enclave_ready`, lines 354-375,
  constants lines 62-64), before the command is even read; `/env` and `/cmd` read one item a line
  (`read_config`, lines 321-352); `chdir("/rootfs")`, `chroot(".")`, `chdir("/")` (lines 431-437); in the
  child, `putenv("PATH=/sbin:/usr/sbin:/bin:/usr/bin")` then `execvpe(argv[0], argv, envp)` (lines 296-297),
  so argv[0] is looked up on the init's PATH while the program gets only the image's Env (or PATH alone when
  there is none, `default_envp` lines 66-69, used at line 284); a failed exec prints `execvpe: <argv0>: `
  and perror's text (`die2` line 298, `warn2`/`warn` lines 136-148) and exits with errno (`dien`, line 151);
  the init reaps until that child exits (`reap_until`, lines 301-319: "child exited with error" on a non-zero
  status) and then `reboot(RB_AUTOBOOT)` (line 449): the enclave ends.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

INIT_PATH = "/sbin:/usr/sbin:/bin:/usr/bin"  # init.c line 59, DEFAULT_PATH_ENV
INIT_CWD = "/"  # init.c line 437, chdir("/") after chroot(".")
HEARTBEAT_CID = 3  # init.c line 63
HEARTBEAT_PORT = 9000  # init.c line 62
HEARTBEAT = b"\xb7"  # init.c line 64
CHILD_FAILED_LINE = "child exited with error"  # init.c reap_until, line 311
CHILD_SIGNALLED_LINE = "child exited by signal"  # init.c reap_until, line 315
DEFAULT_ARGV = ("sh",)  # init.c default_argv (line 71), what `launch` runs when /cmd had no line (line 281)
# An ignored signal stays ignored across execve, and whatever started the stand-in may have ignored some
# (CPython ignores SIGPIPE and SIGXFSZ; a CI runner may ignore more, glibc's reserved 32 among them); init.c
# is C and PID 1, so its child execs with every disposition at SIG_DFL (it clears only the blocked mask,
# lines 287-289).
# Every signal but SIGKILL and SIGSTOP, which no process can catch or ignore; 1..64 is Linux's range (_NSIG).
RESETTABLE_SIGNALS = tuple(n for n in range(1, 65) if n not in (signal.SIGKILL, signal.SIGSTOP))


class UnsupportedEntryPoint(ValueError):
    """The image has neither Cmd nor Entrypoint: nitro-cli's DockerError::UnsupportedEntryPoint."""


@dataclass(frozen=True)
class KeptConfig:
    """What the EIF carries of the image's config: its /cmd and /env."""

    cmd: tuple[str, ...]
    env: tuple[str, ...]


def kept_config(config: Mapping[str, object]) -> KeptConfig:
    """docker.rs `extract_image` (lines 266-284): Cmd when present, else Entrypoint; Env; nothing else."""
    env = tuple(str(item) for item in (config.get("Env") or []))  # type: ignore[attr-defined]
    for key in ("Cmd", "Entrypoint"):
        value = config.get(key)
        if value is not None:
            return KeptConfig(tuple(str(item) for item in value), env)  # type: ignore[attr-defined]
    raise UnsupportedEntryPoint("the image has neither Cmd nor Entrypoint (nitro-cli: UnsupportedEntryPoint)")


def config_lines(items: Sequence[str]) -> str:
    """The /cmd and /env file format: docker.rs `write_config`, one item per line."""
    return "".join(f"{item}\n" for item in items)


def exec_environment(env: Sequence[str]) -> list[str]:
    """The program's whole environment: the image's Env; PATH alone when the image has none (init.c 284)."""
    return list(env) if env else [f"PATH={INIT_PATH}"]


def exec_argv(cmd: Sequence[str]) -> tuple[str, ...]:
    """The argv init.c's `launch` execs: the kept Cmd, or `sh` when it is empty (read_config returns NULL for
    an empty /cmd, and launch falls back to default_argv, lines 280-281)."""
    return tuple(cmd) or DEFAULT_ARGV


def lookup(name: str, is_executable: Callable[[str], bool], path: str = INIT_PATH) -> str:
    """Where glibc's execvpe (called at init.c line 297) finds `name`: a name with a `/` as it is, else the
    first directory of the init's PATH (never the image's) holding an executable of that name. Raises
    FileNotFoundError (ENOENT), as execvpe fails, when there is none. Stricter than glibc, allowed: the
    stand-in execs the path with os.execve, so a file the kernel refuses as ENOEXEC (a script with no `#!`)
    fails, where glibc's execvpe would retry it as `/bin/sh <file>`."""
    if "/" in name:
        if is_executable(name):
            return name
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
    for directory in path.split(":"):
        candidate = f"{directory.rstrip('/') or ''}/{name}"
        if directory and is_executable(candidate):
            return candidate
    raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)


def exec_failure_line(argv0: str, error: OSError) -> str:
    """What init.c's die2("execvpe", argv[0]) prints (line 298): warn2's "execvpe: ", then perror(argv0)."""
    return f"execvpe: {argv0}: {error.strerror or error}"

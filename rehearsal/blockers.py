"""`--revert BLOCKER`: put one of the pre-deploy review's blockers back into what the instance receives (the
rendered user data or the code asset), so a rehearsal can prove it fails on it, naming the tool that refused.

Each reversion undoes the fix exactly where the fix was made; a reversion that finds nothing to undo is an
error, so a stale one cannot pass silently.

Blocker 2 (`nitro-cli-home`: `nitro-cli build-enclave` stops with E51 without NITRO_CLI_ARTIFACTS or HOME)
is retired: no host builds an image any more, and only build-enclave asks for the artifacts path
(aws/aws-nitro-enclaves-cli src/lib.rs, `artifacts_path()` is called from the EIF build only); the build
runs in CodeBuild, whose container has HOME=/root (the AL2023 standard image's Dockerfile sets no HOME, so
Docker's default for root applies; aws/aws-codebuild-docker-images al/x86_64/standard/5.0/Dockerfile).
"""

from __future__ import annotations

import re
from collections.abc import Callable

VSOCK_PROXY_OVERRIDE = "infra/constructs/host/vsock-proxy.override.conf"
BOOTSTRAP = "infra/constructs/host/bootstrap.sh"
RELAY_UNIT = "infra/constructs/host/nitro-enclave-demo-relay.service"
RELAY_MODULE = "app/parent/relay.py"
# Where a forged demo.env value's command leaves its mark (not /tmp: systemd-nspawn mounts a tmpfs there).
FORGED_MARKER = "/var/tmp/forged-config-ran"  # noqa: S108 - a path inside the rehearsal's host, by design
# Not a reversion: the forged value alone, against the fixed reader (`--forge-eif-version`).
FORGED = "forged-eif-version"
ENCLAVE_DOCKERFILE = "app/enclave/Dockerfile"


class NothingToRevert(ValueError):
    """The fix this reversion undoes is not where it was expected."""


def _replace(pattern: str, replacement: str, text: str, what: str) -> str:
    patched, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    if count == 0:
        raise NothingToRevert(f"cannot revert {what}: the fix is not there")
    return patched


def allocator_blank_line(user_data: str) -> str:
    """Blocker 1: the heredoc around allocator.yaml writes a blank last line again."""
    return _replace(r"\nEND_OF_ALLOCATOR_YAML$", "\n\nEND_OF_ALLOCATOR_YAML", user_data, "allocator.yaml")


def vsock_proxy_workers(override: str) -> str:
    """Blocker 3: vsock-proxy runs with its default of 4 workers again."""
    return _replace(r" (--num_workers|-w)[ =]\S+", "", override, "vsock-proxy --num_workers")


def agent_log_paths(user_data: str) -> str:
    """The CloudWatch agent watches `<unit>.service.log` again, where the journal exports write `<unit>.log`
    (%i of nitro-enclave-demo-journal@<unit>.service has no suffix)."""
    return _replace(
        r'("file_path": "/var/log/nitro-enclave-demo/[a-z-]+)\.log"',
        r'\1.service.log"',
        user_data,
        "agent paths",
    )


def relay_before_canary(bootstrap: str) -> str:
    """The relay starts with the enclave again, before the ping and the canary have proven the host (with
    `relay_unproven` and `access_denied_permanent`, the old form whole)."""
    started = _replace(
        r'^step relay "[^"]*"\nsystemctl enable --now "\$RELAY_UNIT"\n',
        "",
        bootstrap,
        "the relay's late start",
    )
    return _replace(
        r"^(systemctl enable --now nitro-enclave-demo-enclave\.service\n)",
        r'\1systemctl enable --now "$RELAY_UNIT"\n',
        started,
        "the enclave's start",
    )


def relay_unproven(unit: str) -> str:
    """The relay unit starts the relay without running the canary first (no ExecStartPre)."""
    return _replace(r"^ExecStartPre=.* -m app\.parent canary\n", "", unit, "the relay unit's canary")


def access_denied_permanent(relay: str) -> str:
    """The relay parks `access_denied` at once again, with no propagation grace window after its start."""
    return _replace(
        r"^PROPAGATION_GRACE_S = \S+$", "PROPAGATION_GRACE_S = 0.0", relay, "the relay's grace window"
    )


def forge_eif_version(user_data: str) -> str:
    """A build answer forged past the handler's checks: EifVersion with a command substitution, as the
    launch template's Fn::Sub writes it into demo.env."""
    forged = f"EIF_VERSION=v1$(touch {FORGED_MARKER})"
    return _replace(r"^EIF_VERSION=\S+$", forged, user_data, "demo.env's EIF_VERSION")


def source_demo_env(bootstrap: str) -> str:
    """bootstrap.sh sources demo.env as root again instead of reading it as data (demo-env.sh)."""
    reader = r'^demo_env_read "\$CONF_DIR/demo.env" "\$HOST_DIR/demo-env.patterns" \|\|\n.*$'
    return _replace(reader, 'set -a\n. "$CONF_DIR/demo.env"\nset +a', bootstrap, "the demo.env reader")


def enclave_cmd_workdir(dockerfile: str) -> str:
    """The image's Cmd needs WORKDIR again: PYTHONPATH leaves the Env, so under the Nitro init (cwd /) the
    interpreter finds no module `app`."""
    return _replace(r" \\\n\s*PYTHONPATH=\S+$", "", dockerfile, "the enclave image's PYTHONPATH")


def enclave_cmd_bare_interpreter(dockerfile: str) -> str:
    """The image's Cmd names a bare `python` again, which the init's PATH (/sbin:/usr/sbin:/bin:/usr/bin) does
    not hold in python:3.11-slim: the init's execvpe fails."""
    pattern = r'^CMD \["/usr/local/bin/python3\.11",'
    return _replace(pattern, 'CMD ["python",', dockerfile, "the enclave image's absolute interpreter")


USER_DATA: dict[str, Callable[[str], str]] = {
    "allocator-blank-line": allocator_blank_line,
    "agent-log-paths": agent_log_paths,
    "host-config-sourced": forge_eif_version,
    FORGED: forge_eif_version,
}
# Per reversion, the files of the code asset it changes and how.
CODE_ASSET: dict[str, dict[str, Callable[[str], str]]] = {
    "vsock-proxy-workers": {VSOCK_PROXY_OVERRIDE: vsock_proxy_workers},
    "relay-before-canary": {
        BOOTSTRAP: relay_before_canary,
        RELAY_UNIT: relay_unproven,
        RELAY_MODULE: access_denied_permanent,
    },
    "host-config-sourced": {BOOTSTRAP: source_demo_env},
    "enclave-cmd-workdir": {ENCLAVE_DOCKERFILE: enclave_cmd_workdir},
    "enclave-cmd-bare-interpreter": {ENCLAVE_DOCKERFILE: enclave_cmd_bare_interpreter},
}
NAMES = tuple(name for name in dict.fromkeys((*USER_DATA, *CODE_ASSET)) if name != FORGED)


def revert_user_data(blocker: str | None, user_data: str) -> str:
    return USER_DATA[blocker](user_data) if blocker in USER_DATA else user_data


def asset_patch(blocker: str | None) -> Callable[[str, bytes], bytes]:
    """A function (path in the asset, content) -> content that reverts `blocker`'s file, if it has one."""

    def patch(path: str, content: bytes) -> bytes:
        revert = CODE_ASSET.get(blocker or "", {}).get(path)
        return content if revert is None else revert(content.decode()).encode()

    return patch

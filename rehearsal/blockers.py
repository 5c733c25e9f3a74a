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


def enclave_cmd_workdir(dockerfile: str) -> str:
    """The image's Cmd needs WORKDIR again: PYTHONPATH leaves the Env, so under the Nitro init (cwd /) the
    interpreter finds no module `app`."""
    return _replace(r" \\\n\s*PYTHONPATH=\S+$", "", dockerfile, "the enclave image's PYTHONPATH")


def enclave_cmd_bare_interpreter(dockerfile: str) -> str:
    """The image's Cmd names a bare `python` again, which the init's PATH (/sbin:/usr/sbin:/bin:/usr/bin) does
    not hold in python:3.11-slim: the init's execvpe fails."""
    pattern = r'^CMD \["/usr/local/bin/python3\.11",'
    return _replace(pattern, 'CMD ["python",', dockerfile, "the enclave image's absolute interpreter")


USER_DATA: dict[str, Callable[[str], str]] = {"allocator-blank-line": allocator_blank_line}
CODE_ASSET: dict[str, tuple[str, Callable[[str], str]]] = {
    "vsock-proxy-workers": (VSOCK_PROXY_OVERRIDE, vsock_proxy_workers),
    "enclave-cmd-workdir": (ENCLAVE_DOCKERFILE, enclave_cmd_workdir),
    "enclave-cmd-bare-interpreter": (ENCLAVE_DOCKERFILE, enclave_cmd_bare_interpreter),
}
NAMES = (*USER_DATA, *CODE_ASSET)


def revert_user_data(blocker: str | None, user_data: str) -> str:
    return USER_DATA[blocker](user_data) if blocker in USER_DATA else user_data


def asset_patch(blocker: str | None) -> Callable[[str, bytes], bytes]:
    """A function (path in the asset, content) -> content that reverts `blocker`'s file, if it has one."""

    def patch(path: str, content: bytes) -> bytes:
        if blocker in CODE_ASSET and CODE_ASSET[blocker][0] == path:
            return CODE_ASSET[blocker][1](content.decode()).encode()
        return content

    return patch

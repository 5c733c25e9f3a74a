#!/usr/bin/python3
"""/usr/bin/docker of the rehearsal: `docker version` here, every other command to docker_cli.py (the
docker CLI stand-in proper, helper "repro"'s module), so the buildspec's diagnostic `docker version` runs.

Contract of `docker version` (docs.docker.com/reference/cli/docker/version): a `Client:` section, then a
`Server:` section from the daemon; when the daemon cannot be reached, the client section, then `Cannot
connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?` and exit 1.
The versions printed say what answers: the rehearsal's stand-ins, not a Docker release.

`docker version --format TEMPLATE` (the same page: a Go template over the client and server versions) is
reproduced for the two server fields infra/build/build-eif.sh reads, `{{.Server.Version}}` and
`{{.Server.MinAPIVersion}}`, with the values of the daemon the stand-in models: CodeBuild's Amazon Linux 2023
standard 5.0 image, Docker 28.5.2 (aws/aws-codebuild-docker-images al/x86_64/standard/5.0/Dockerfile), whose
minimum API version is Docker 28's 1.24 (docs.docker.com/reference/api/engine, `docker version` example).
Any other template is refused (exit 125), as is the daemon being down (exit 1, as above).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rehearsal.standins import docker_cli, host

CLIENT = "Client:\n Version:           rehearsal stand-in (docker_cli.py)\n OS/Arch:           linux/amd64\n"
SERVER = "Server:\n Engine:\n  Version:          rehearsal stand-in (dockerd.py)\n"
FORMAT_FIELDS = {"{{.Server.Version}}": "28.5.2", "{{.Server.MinAPIVersion}}": "1.24"}


def version(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in {"--format", "-f"}:
        return _formatted(argv[1])
    if argv:
        host.fail(f"rehearsal stand-in docker: version {' '.join(argv)} is not supported here", 125)
    print(CLIENT, flush=True)
    docker_cli.require_daemon()
    print(SERVER, end="")
    return 0


def _formatted(template: str) -> int:
    rendered = template
    for field, value in FORMAT_FIELDS.items():
        rendered = rendered.replace(field, value)
    if "{{" in rendered:
        host.fail(f"rehearsal stand-in docker: version --format {template!r} is not supported here", 125)
    docker_cli.require_daemon()
    print(rendered)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:
        return version(argv[1:])
    return docker_cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

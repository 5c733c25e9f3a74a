"""Names shared by the stack's constructs and its tests, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Final

STACK_ID: Final = "NitroEnclaveDemo"
PROJECT: Final = "nitro-enclave-demo"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
HOST_FILES_DIR: Final = Path(__file__).resolve().parent / "constructs" / "host"

# The project's code travels as one S3 asset holding exactly these files (globs from the repo root; `**`
# spans directories): what the instance installs and runs and what CodeBuild builds the enclave image from
# (infra/build/build-eif.sh and the context.py it runs), and nothing else, so a stray file in a
# checkout or an output directory inside the repo (`cdk synth -o out`) never reaches S3 or the instance.
# The templates rendered into the user data (user-data.sh, demo.env, *.yaml, the agent config) arrive that
# way and are not shipped; a change to any of them changes the launch template's user data, which rolls
# the host group.
CODE_ASSET_FILES: Final = (
    "pyproject.toml",
    "app/**/*.py",
    "app/.dockerignore",
    "app/enclave/Dockerfile",
    "app/enclave/requirements.txt",
    "app/producer/cards.txt",
    "app/shared/aws_nitro_root_g1.pem",
    "infra/build/build-eif.sh",
    "infra/build/context.py",
    "infra/constructs/host/bootstrap.sh",
    "infra/constructs/host/demo-env.patterns",
    "infra/constructs/host/demo-env.sh",
    "infra/constructs/host/enclave-run.sh",
    "infra/constructs/host/nitro-demo.sh",
    "infra/constructs/host/nitro-enclave-demo-enclave.service",
    "infra/constructs/host/nitro-enclave-demo-relay.service",
    "infra/constructs/host/nitro-enclave-demo-logs.service",
    "infra/constructs/host/nitro-enclave-demo-journal@.service",
    "infra/constructs/host/vsock-proxy.override.conf",
)
# Never shipped, even inside an allowed directory.
CODE_ASSET_NEVER: Final = ("__pycache__/", "*.pyc")

INSTALL_DIR: Final = "/opt/nitro-enclave-demo"
ENV_FILE: Final = "/etc/nitro-enclave-demo/demo.env"
VENV_PYTHON: Final = f"{INSTALL_DIR}/venv/bin/python"
# The one command on the instance (host/nitro-demo.sh, installed by the bootstrap); the SSM documents run it.
NITRO_DEMO: Final = "/usr/local/bin/nitro-demo"
METRIC_NAMESPACE: Final = "NitroEnclaveDemo"

AL2023_AMI_PARAMETER: Final = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
ROOT_DEVICE: Final = "/dev/xvda"
ROOT_VOLUME_GIB: Final = 30

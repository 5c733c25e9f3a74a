"""Names shared by the stack's constructs and its tests, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Final

STACK_ID: Final = "NitroEnclaveDemo"
PROJECT: Final = "nitro-enclave-demo"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
HOST_FILES_DIR: Final = Path(__file__).resolve().parent / "constructs" / "host"

# The project's code travels as one S3 asset (gitignore syntax for what stays behind). Its hash is part of
# the boot generation, so it must keep infra/ (host files and the constructs that render the user data).
CODE_ASSET_EXCLUDES: Final = (
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "cdk-outputs.json",
    ".cache",
    "/tests",
    "/docs",
    "/build",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    # Files the instance never uses; leaving them out keeps their edits from replacing the instance.
    "*.md",
    "/.ci",
    "/.gitignore",
    "/Makefile",
    "/cdk.json",
    "/package.json",
    "/package-lock.json",
)

INSTALL_DIR: Final = "/opt/nitro-enclave-demo"
ENV_FILE: Final = "/etc/nitro-enclave-demo/demo.env"
VENV_PYTHON: Final = f"{INSTALL_DIR}/venv/bin/python"
# The one command on the instance (host/nitro-demo.sh, installed by the bootstrap); the SSM documents run it.
NITRO_DEMO: Final = "/usr/local/bin/nitro-demo"
METRIC_NAMESPACE: Final = "NitroEnclaveDemo"

AL2023_AMI_PARAMETER: Final = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{arch}"
ROOT_DEVICE: Final = "/dev/xvda"
ROOT_VOLUME_GIB: Final = 30
# The wait condition's signal: {"pcr0": "<hex>"}; split on '"' the value is the fourth piece.
SIGNAL_UNIQUE_ID: Final = "pcr0"
SIGNAL_DATA_INDEX: Final = 3

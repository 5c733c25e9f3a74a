"""Run documents: SSM Command documents that drive the demo without a shell session — send N cards and
print the results, print the status and the doctor's findings. They run `nitro-demo` (installed by the
bootstrap) on the instance; nothing else.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra import constants

SCHEMA_VERSION = "2.2"
MAX_CARDS = 1000
EXECUTION_TIMEOUT_S = 900


def _command_document(description: str, commands: list[str], parameters: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": SCHEMA_VERSION,
        "description": description,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "run",
                "inputs": {"runCommand": commands, "timeoutSeconds": str(EXECUTION_TIMEOUT_S)},
            }
        ],
    }
    if parameters:
        document["parameters"] = parameters
    return document


class RunDocuments(Construct):
    """`SendCards` (parameter Count) and `Status`."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        count = {
            "Count": {
                "type": "String",
                "description": f"How many test cards to send (1-{MAX_CARDS})",
                "default": "10",
                "allowedPattern": "^([1-9][0-9]{0,2}|1000)$",
            }
        }
        self.send_cards = ssm.CfnDocument(
            self,
            "SendCards",
            document_type="Command",
            content=_command_document(
                "nitro-enclave-demo: send Count test cards through the enclave and print the results",
                [f"{constants.NITRO_DEMO} send {{{{ Count }}}}"],
                count,
            ),
        )
        self.status = ssm.CfnDocument(
            self,
            "Status",
            document_type="Command",
            content=_command_document(
                "nitro-enclave-demo: health of every part, then the doctor's findings",
                # The findings are the output; the document fails only if a tool could not run at all.
                [
                    "rc=0",
                    f"{constants.NITRO_DEMO} status --report-only || rc=$?",
                    f"{constants.NITRO_DEMO} doctor --report-only || rc=$?",
                    'exit "$rc"',
                ],
                {},
            ),
        )

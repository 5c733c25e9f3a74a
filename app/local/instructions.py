"""The text `serve` prints: endpoints, env exports and the AWS CLI recipe to send a card by hand.

Pure formatting, no I/O. The recipe reads a test number from the shipped card file instead of spelling
one out, so no full card number is ever printed.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from app.local.software_nsm import ATTESTATION_ROOT_FILE
from app.local.stack import StackInfo
from app.shared import settings

HAND_CARD_ID = "hand-1"
CARDS_FILE = Path(__file__).resolve().parents[1] / "producer" / "cards.txt"


def exports(info: StackInfo) -> list[str]:
    return [f"export {name}={shlex.quote(value)}" for name, value in info.environment().items()]


def context_shorthand(card_id: str) -> str:
    """`app=nitro-enclave-demo,card_id=hand-1`: the AWS CLI's shorthand for a string map."""
    pairs = {**settings.DEFAULT_ENCRYPTION_CONTEXT, "card_id": card_id}
    return ",".join(f"{key}={value}" for key, value in pairs.items())


def cli_recipe(info: StackInfo, card_id: str = HAND_CARD_ID) -> list[str]:
    """Shell lines (bash) that encrypt a test card with KMS, queue it, and read its result."""
    endpoint = shlex.quote(info.endpoints.http)
    body = '{"version":1,"card_id":"%s","ciphertext":"\'"$CIPHERTEXT"\'"}' % card_id  # noqa: UP031
    return [
        f"CARD=$(grep -m1 -E -x '[0-9]{{12,19}}' {shlex.quote(str(CARDS_FILE))})  # not echoed",
        # AWS CLI v2 reads --plaintext as base64 unless it comes from fileb:// (raw bytes).
        f'CIPHERTEXT=$(aws --endpoint-url {endpoint} kms encrypt --key-id "$KMS_KEY_ID"'
        ' --plaintext fileb://<(printf %s "$CARD")'
        f" --encryption-context {context_shorthand(card_id)} --query CiphertextBlob --output text)",
        f"aws --endpoint-url {endpoint} sqs send-message"
        f" --queue-url {shlex.quote(info.resources.cards_queue_url)} --message-body '{body}'",
        f"aws --endpoint-url {endpoint} sqs receive-message"
        f" --queue-url {shlex.quote(info.resources.results_queue_url)} --wait-time-seconds 20"
        " --query 'Messages[].Body' --output text",
    ]


def serve_text(info: StackInfo) -> str:
    lines = [
        "local stack running; Ctrl-C (or SIGTERM) stops it",
        f"  emulator (AWS API) {info.endpoints.http}   (HTTPS for the enclave: {info.endpoints.https})",
        f"  enclave            {info.enclave_url}   pinned PCR0 {info.pin_hex}",
        f"  logs               {info.run_dir}",
        "",
        "# 1. in another shell, point tools at the emulator:",
        *exports(info),
        "",
        "# 2. send cards with the producer and wait for the results:",
        f"{shlex.quote(sys.executable)} -m app.producer --count 5 --wait",
        "",
        "# 3. or send one by hand with the AWS CLI (bash):",
        *cli_recipe(info),
        "# the result is a JSON body with status ok and the last four digits (rejected cards also go to",
        f"# the dead-letter queue {info.resources.dead_letter_queue_url}); to check who signed it, pipe",
        f"# the body into: {shlex.quote(sys.executable)} -m app.producer verify",
        "",
        "# 4. verify the enclave's attestation and compare its PCR0 with the pin in the key policy:",
        f"{shlex.quote(sys.executable)} -m app.parent attest"
        f" --root-pem {shlex.quote(str(info.run_dir / 'pki' / ATTESTATION_ROOT_FILE))}",
        "",
        "# 5. the health of every part, and the enclave's own log channel:",
        f"{shlex.quote(sys.executable)} -m app.ops status",
        f"tail -f {shlex.quote(str(info.enclave_log_file))}",
    ]
    return "\n".join(lines)

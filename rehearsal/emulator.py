"""The rehearsal's AWS APIs: local mode's emulator (moto: KMS, SQS, S3, SSM) with KMS Decrypt's Recipient
behaviour taken from the key's own policy, so the pin the rehearsal enforces is the one the template's
key policy carries after rendering - not a value handed to the emulator at start.

Until local mode evaluates whole key policies (issue 10), only the policy's
`StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384` values are enforced here, through
`app.local.kms_recipient` (attestation verified against the local PKI's root, fresh, RSA-2048 recipient);
a key whose policy has none refuses every Decrypt. Run inside the rehearsal's network namespace:
`python -m rehearsal.emulator --pki DIR` prints its endpoints as one JSON line: `http`, `https`, and
`kms_keepalive`, the keep-alive HTTPS front (rehearsal.keepalive) the enclave's KMS calls go to.
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.local import kms_recipient
from app.local.cms_wrap import wrap_for_recipient
from app.local.emulator import ATTESTATION_MAX_AGE_S, TLS_HOSTNAME, Emulator, speed_up_moto_clock
from app.local.emulator import tls_context as local_tls_context
from app.local.software_nsm import LocalPki
from app.shared import logs
from rehearsal import keepalive

IMAGE_SHA384 = "kms:RecipientAttestation:ImageSha384"


def pinned_image_sha384(policy: dict[str, Any]) -> frozenset[str]:
    """The ImageSha384 values the policy's Allow statements for kms:Decrypt accept (lowercased)."""
    pins: set[str] = set()
    for statement in _as_list(policy.get("Statement", [])):
        actions = {a.lower() for a in _as_list(statement.get("Action", []))}
        if statement.get("Effect") != "Allow" or not actions & {"kms:decrypt", "kms:*", "*"}:
            continue
        values = statement.get("Condition", {}).get("StringEqualsIgnoreCase", {}).get(IMAGE_SHA384, [])
        pins.update(str(v).lower() for v in _as_list(values))
    return frozenset(pins)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def install(root_certificate_der: bytes, max_age_s: float = ATTESTATION_MAX_AGE_S) -> None:
    """Patch moto's Decrypt: answer as KMS does for a Recipient, under the decrypted key's own policy."""
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - moto is a rehearsal/local dependency
    from moto.kms.responses import KmsResponse  # noqa: PLC0415

    original: Callable[[Any], str] = KmsResponse.decrypt

    def decrypt(response: Any) -> str:
        recipient = response._get_param("Recipient")
        answer = json.loads(original(response))
        key = response.kms_backend.describe_key(answer["KeyId"])
        policy = kms_recipient.RecipientPolicy(
            root_certificate_der=root_certificate_der,
            allowed_image_sha384=pinned_image_sha384(json.loads(key.policy)),
            max_age_s=max_age_s,
        )
        try:
            public_key_der = kms_recipient._authorize_request(recipient, policy)
        except kms_recipient.RecipientRefused as refused:
            raise JsonRESTError(refused.code, refused.message) from refused
        wrapped = wrap_for_recipient(base64.b64decode(answer["Plaintext"]), public_key_der)
        return json.dumps(
            {
                "CiphertextForRecipient": base64.b64encode(wrapped).decode("ascii"),
                "KeyId": answer["KeyId"],
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }
        )

    KmsResponse.decrypt = decrypt  # type: ignore[method-assign,assignment]


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    p = argparse.ArgumentParser(prog="python -m rehearsal.emulator", description=__doc__)
    p.add_argument("--pki", type=Path, required=True, help="directory written by LocalPki.save()")
    args = p.parse_args(argv)
    pki = LocalPki.load(args.pki)
    install(pki.root_certificate_der)
    speed_up_moto_clock()
    tls = local_tls_context(pki, args.pki)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Emulator(tls) as endpoints:
        front = keepalive.start(endpoints.http, tls)
        ready = {"http": endpoints.http, "https": endpoints.https}
        ready["kms_keepalive"] = f"https://{TLS_HOSTNAME}:{front.server_address[1]}"
        print(json.dumps(ready, separators=(",", ":")), flush=True)
        stop.wait()
        front.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one check of how a program names the card key: a full key ARN, never an alias or a bare key id.

Every KMS call the programs make (producer, relay, canary, attest, status) names the key by the value this
returns. An alias is refused because it is redirectable: whoever may call kms:UpdateAlias (and
kms:CreateKey) can point it at a key of their own without touching this key's policy, and every later card
would be encrypted under their key. A bare key id is refused because it leaves the account and region to
whoever runs the program. Local mode passes the emulator key's ARN too: there is no mode that accepts less.
Pure: no AWS calls, no environment reads.
"""

from __future__ import annotations

import re
from typing import Final

from app.shared.settings import ENV_KMS_KEY_ID, SettingsError

# arn:<partition>:kms:<region>:<account>:key/<uuid>: the form KMS gives a single-Region key's ARN
# (KMS developer guide, "Key identifiers (KeyId)"). Multi-Region keys (mrk-...) are not what the stack makes.
# Written in the subset POSIX ERE and Python's re share (plain groups, classes, {m,n}), so the host's reader
# of demo.env can hold the very same pattern for KMS_KEY_ID.
KEY_ARN_PATTERN: Final = (
    r"arn:aws(-cn|-us-gov)?:kms:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:"
    r"key/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
)
_KEY_ARN: Final = re.compile(KEY_ARN_PATTERN)
_ALIAS: Final = re.compile(r"(?:arn:[^:]*:kms:[^:]*:[^:]*:)?alias/.*")
EXAMPLE: Final = "arn:aws:kms:<region>:<account>:key/<key id>"
WHY_NOT_AN_ALIAS: Final = (
    "an alias is redirectable: whoever may call kms:UpdateAlias and kms:CreateKey can point it at a key of "
    "their own without touching this key's policy (alias redirection)"
)


class KeyArnError(SettingsError):
    """The key is not named by a full key ARN (or by one of another region); the message says why."""


def require_key_arn(value: str | None, *, region: str | None = None, name: str = ENV_KMS_KEY_ID) -> str:
    """`value` when it is a full key ARN (in `region`, when given); KeyArnError naming `name` otherwise."""
    if not value:
        raise KeyArnError(
            f"{name} is not set: name the key by its ARN ({EXAMPLE}; the stack's KeyArn output)"
        )
    if _ALIAS.fullmatch(value):
        raise KeyArnError(
            f"{name} is an alias ({value!r}); the programs name the key only by its ARN ({EXAMPLE}, the "
            f"stack's KeyArn output), because {WHY_NOT_AN_ALIAS}"
        )
    if not _KEY_ARN.fullmatch(value):
        raise KeyArnError(
            f"{name} must be the key's full ARN ({EXAMPLE}, the stack's KeyArn output), got {value!r}: a "
            "bare key id leaves the account and region unsaid, and an alias can be redirected"
        )
    arn_region = value.split(":")[3]
    if region and arn_region != region:
        raise KeyArnError(f"{name} names a key in {arn_region}, but this program runs in {region}: {value!r}")
    return value

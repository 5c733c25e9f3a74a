"""What to do next, for each way the producer can fail: one line a person can act on.

Only error types and codes are read here, never a message's text (library texts can echo request data).
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from app.shared import settings

from .card_file import CardFileError
from .sender import CardIdRefused, SendError
from .verification import TrustError

WHERE_SETTINGS_COME_FROM = (
    "on the instance run `nitro-demo send N` (it reads /etc/nitro-enclave-demo/demo.env); "
    "locally paste the `export` lines that `make serve` prints"
)
RESULTS_MISSING = (
    "is the relay running? On the instance: `nitro-demo status`; locally: the relay's log in the run "
    "directory. Results that arrive late stay on the results queue"
)
RESULTS_UNVERIFIED = (
    "an UNVERIFIED result was not signed by an enclave running the pinned image (or was changed after): "
    "do not trust it; docs/programs.md says how results are verified"
)
CARDS_REJECTED = (
    "each rejected card is also on the dead-letter queue with its error_code; "
    "docs/programs.md says what each code means"
)
ACCESS_CODES = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
BY_TYPE: tuple[tuple[type[Exception] | tuple[type[Exception], ...], str], ...] = (
    (settings.SettingsError, WHERE_SETTINGS_COME_FROM),
    (CardFileError, "give --cards-file a file with one test card number per line, or leave it out"),
    ((NoCredentialsError, PartialCredentialsError), "no AWS credentials: " + WHERE_SETTINGS_COME_FROM),
    (NoRegionError, f"set {settings.ENV_REGION} to the stack's region"),
    (
        EndpointConnectionError,
        f"check {settings.ENV_REGION}; locally, is `make serve` still running (AWS_ENDPOINT_URL)?",
    ),
    (CardIdRefused, "choose card ids that hold no card number (12 or more digits in a row, in any grouping)"),
    (SendError, "SQS refused part of a batch: run again (the cards already queued are processed)"),
    (
        TrustError,
        "give --pinned-pcr0 (the PCR0 the key policy pins) or a role that may kms:DescribeKey and "
        f"kms:GetKeyPolicy; locally give --root-pem or {settings.ENV_ATTESTATION_ROOT_PEM}",
    ),
)
MISSING_CODES = ("NotFoundException", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def for_error(error: Exception) -> str:
    """The next step after `error`; a generic one when its type says nothing more."""
    if isinstance(error, ClientError):
        return _for_client_error(error.response.get("Error", {}).get("Code", ""))
    return next(
        (step for kinds, step in BY_TYPE if isinstance(error, kinds)),
        "run again with LOG_LEVEL=INFO to see the JSON log on stderr",
    )


def _for_client_error(code: str) -> str:
    if code in ACCESS_CODES:
        return f"{code}: the caller's role may not do this; `aws sts get-caller-identity` shows who you are"
    if code in MISSING_CODES:
        return f"{code}: check the queue URLs and key against the stack outputs, and {settings.ENV_REGION}"
    return f"{code}: AWS refused the call; run again with LOG_LEVEL=INFO for the JSON log on stderr"

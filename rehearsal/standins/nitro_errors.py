"""How the stand-in nitro-cli fails: `[ Exx ] <what>`, the help link, the error log; exit status = the number.

Source: aws/aws-nitro-enclaves-cli `src/common/mod.rs` (`construct_error_message`, `ok_or_exit_with_errno`:
the process exits with the error enum's value, E51 -> 51) and `src/common/document_errors.rs` (the codes and
what each means; summarized here in our words). The detail line is what the real one records as the failing
subaction in its backtrace log, which it names on stderr.
"""

from __future__ import annotations

import sys
import time
from typing import NoReturn

from rehearsal.standins import host

HELP_URL = "https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#E{code:02d}"
LOG_DIR = "/var/log/nitro_enclaves"
MEANING = {
    3: "Invalid argument provided.",
    19: "File operation failure.",
    22: "Insufficient CPUs available in the pool.",
    26: "Insufficient memory requested.",
    27: "Insufficient memory available.",
    33: "Enclave start failure.",
    35: "EIF file parsing error.",
    36: "Enclave boot failure.",
    40: "Socket path not found.",
    48: "EIF building error.",
    50: "Docker image pull error.",
    51: "Artifacts path environment variable not set. Such error appears when trying to build an EIF "
    "file, but the artifacts path environment variable is not set.",
    58: "Naming error.",
}


def exit_with(code: int, detail: str) -> NoReturn:
    log_path = host.path(f"{LOG_DIR}/err{time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime())}.log")
    message = f"[ E{code:02d} ] {MEANING.get(code, 'Unspecified error.')}\n{detail}"
    message += f"\n\nFor more details, please visit {HELP_URL.format(code=code)}"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(
            f"  Action: {' '.join(sys.argv[1:2])}\n  Subactions: {detail}\n", encoding="utf-8"
        )
        message += f'\n\nIf you open a support ticket, please provide the error log found at "{log_path}"'
    except OSError:
        pass
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)

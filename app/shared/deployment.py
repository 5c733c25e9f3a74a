"""Queue and key settings shared by the cloud stack (infra) and local mode, declared once.

Constants only: no AWS calls, no environment reads. Infra and `app.local.provision` both build from these.
"""

from __future__ import annotations

from typing import Final

from app.shared.settings import DEFAULT_ENCRYPTION_CONTEXT, DEFAULT_KEY_ALIAS

KEY_ALIAS: Final = DEFAULT_KEY_ALIAS
KEY_DESCRIPTION: Final = "nitro-enclave-demo: card numbers, decryptable only by the attested enclave"
ENCRYPTION_CONTEXT: Final = DEFAULT_ENCRYPTION_CONTEXT

CARDS_QUEUE_NAME: Final = "nitro-enclave-demo-cards"
RESULTS_QUEUE_NAME: Final = "nitro-enclave-demo-results"
DEAD_LETTER_QUEUE_NAME: Final = "nitro-enclave-demo-cards-dlq"

# Long enough for a batch of 10 to go through the enclave (KMS round trips) with room for retries.
CARDS_VISIBILITY_TIMEOUT_S: Final = 60
RESULTS_VISIBILITY_TIMEOUT_S: Final = 30
# A message that fails this many receives (transient errors that never clear) is parked on the DLQ.
MAX_RECEIVE_COUNT: Final = 5
CARDS_RETENTION_S: Final = 4 * 24 * 3600
RESULTS_RETENTION_S: Final = 4 * 24 * 3600
# The DLQ keeps messages longer than its source (SQS keeps the original enqueue time on redrive).
DEAD_LETTER_RETENTION_S: Final = 14 * 24 * 3600
LONG_POLL_WAIT_S: Final = 20
MAX_BATCH: Final = 10  # SQS ReceiveMessage / SendMessageBatch / DeleteMessageBatch hard limit

# The most connections the enclave holds open to KMS at once (all its workers together), and exactly
# the number of workers the parent's vsock-proxy gets (`--num_workers`). vsock-proxy hands each accepted
# connection to a thread pool whose worker is busy until that connection closes (aws/aws-nitro-enclaves-cli,
# vsock_proxy/src/main.rs and proxy.rs; default 4), so connection N+1 would be accepted and then hang.
KMS_CONNECTIONS: Final = 32
# The most one attested KMS Decrypt may take inside the enclave, all included: waiting for a free connection,
# connecting over the egress link, the TLS handshake, the request and its answer. It stays below the relay's
# request timeout (app/parent/enclave_client.py REQUEST_TIMEOUT_S, checked by a test), so a slow KMS ends in
# the enclave's own retryable `kms_unavailable` for that one card, never in the relay giving up on the whole
# vsock connection and with it every other card in flight on it.
KMS_CALL_DEADLINE_S: Final = 10.0

# Message attributes the relay sets on a message it parks on the dead-letter queue.
DLQ_ATTRIBUTE_ERROR_CODE: Final = "error_code"
DLQ_ATTRIBUTE_ERROR_MESSAGE: Final = "error_message"

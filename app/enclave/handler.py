"""What each request means: ping, decrypt, attest. Pure dispatch; no sockets, no threads."""

from __future__ import annotations

import logging
import os
import time

from app.enclave.decryptor import DecryptError, Decryptor
from app.enclave.nsm import NsmError, SecureModule
from app.shared import protocol
from app.shared.protocol import ErrorCode, Op, Request, Response

log = logging.getLogger(__name__)

ATTEST_USER_DATA = b"nitro-enclave-demo/attest"


class EnclaveHandler:
    def __init__(self, decryptor: Decryptor, nsm: SecureModule, *, worker: int = 0, workers: int = 1) -> None:
        self._decryptor = decryptor
        self._nsm = nsm
        self._started = time.monotonic()
        # A ping says which worker process answered, so the relay can hold a connection to each.
        self._identity = {"worker": worker, "workers": workers, "pid": os.getpid()}

    def __call__(self, request: Request) -> Response:
        try:
            if request.op is Op.PING:
                body = {
                    "status": "ok", "protocol": protocol.PROTOCOL_VERSION, "uptime_s": self._uptime(),
                    **self._identity, **self._decryptor.clock.ping_fields(),
                }  # fmt: skip
                return Response(request.id, body=body)
            if request.op is Op.ATTEST:
                return self._attest(request)
            return self._decrypt(request)
        except protocol.ProtocolError as error:
            return protocol.error_response(request.id, error.code, str(error))

    def _uptime(self) -> float:
        return round(time.monotonic() - self._started, 1)

    def _attest(self, request: Request) -> Response:
        nonce = protocol.parse_attest(request.body)
        try:
            document = self._nsm.attest(nonce=nonce, user_data=ATTEST_USER_DATA)
        except NsmError as error:
            return protocol.error_response(request.id, ErrorCode.INTERNAL, str(error))
        return Response(request.id, body=protocol.attest_result_body(document))

    def _decrypt(self, request: Request) -> Response:
        decrypt_request = protocol.parse_decrypt(request.body)
        try:
            result = self._decryptor.decrypt(decrypt_request)
        except DecryptError as error:
            log.info("decrypt refused", extra={"fields": {"id": request.id, "code": error.code.value}})
            return protocol.error_response(request.id, error.code, str(error), error.proof)
        except NsmError as error:
            return protocol.error_response(request.id, ErrorCode.INTERNAL, str(error))
        log.info(
            "decrypted",
            extra={"fields": {"id": request.id, "kms_ms": result.kms_ms, "ms": result.enclave_ms}},
        )
        return Response(request.id, body=protocol.decrypt_result_body(result))

"""`python -m app.local.ceiling`: the emulator's ceiling for the benchmark, with no relay or enclave between.

The same calls as the pipeline, with the same batching and concurrency: ReceiveMessage batches of 10 per
poller, KMS Decrypt with an attested Recipient (one SoftwareNsm document, made once, as the enclave does),
the CMS unwrap and card checks, SendMessageBatch of results, DeleteMessageBatch. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config

from app.enclave import cms
from app.enclave.recipient_keys import RecipientKey, RecipientKeys
from app.enclave.server import WORKERS
from app.local.cpu_accounting import CpuMeter
from app.local.provision import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY, local_client
from app.local.software_nsm import TLS_CA_FILE, LocalPki, SoftwareNsm
from app.parent import relay
from app.shared import cards, deployment, logs, settings
from app.shared.queue_messages import CardMessage, ResultMessage, encryption_context

KEY_ENCRYPTION_ALGORITHM: Final = "RSAES_OAEP_SHA_256"
POLL_WAIT_S = 1
DEFAULT_POLLERS = relay.DEFAULT_POLLERS  # the same concurrency as the pipeline


@dataclass(frozen=True)
class CeilingSettings:
    endpoint: str
    kms_endpoint: str
    pki: Path
    pin: bytes
    cards_queue_url: str
    results_queue_url: str
    cards: int
    pollers: int
    region: str = settings.DEFAULT_REGION


class Ceiling:
    """Pollers that do the relay's and the enclave's AWS work directly; stops after `cards` cards."""

    def __init__(self, config: CeilingSettings) -> None:
        self._config = config
        self._sqs = local_client("sqs", config.endpoint, config.region)
        self._kms = boto3.session.Session(
            aws_access_key_id=LOCAL_ACCESS_KEY_ID, aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY
        ).client(
            "kms", region_name=config.region, endpoint_url=config.kms_endpoint,
            verify=str(config.pki / TLS_CA_FILE), config=Config(max_pool_connections=WORKERS),
        )  # fmt: skip
        self._key: RecipientKey = RecipientKeys(
            SoftwareNsm(LocalPki.load(config.pki), {0: config.pin})
        ).current()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS)
        self._lock = threading.Lock()
        self._done = 0
        self._finished: float | None = None
        self.latencies_ms: list[float] = []

    def run(self) -> float:
        """Process the cards; the seconds until the last one was done (idle end-of-run polls excluded)."""
        started = time.perf_counter()
        threads = [threading.Thread(target=self._poll) for _ in range(self._config.pollers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._pool.shutdown()
        return (self._finished or time.perf_counter()) - started

    def _poll(self) -> None:
        while self._done < self._config.cards:
            answer = self._sqs.receive_message(
                QueueUrl=self._config.cards_queue_url,
                MaxNumberOfMessages=deployment.MAX_BATCH,
                WaitTimeSeconds=POLL_WAIT_S,
            )
            messages = answer.get("Messages", [])
            if messages:
                self._process(messages)

    def _process(self, messages: list[Any]) -> None:
        results = list(self._pool.map(self._decrypt, messages))
        self._sqs.send_message_batch(
            QueueUrl=self._config.results_queue_url,
            Entries=[{"Id": str(i), "MessageBody": r.to_json()} for i, r in enumerate(results)],
        )
        self._sqs.delete_message_batch(
            QueueUrl=self._config.cards_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        with self._lock:
            self._done += len(messages)
            if self._done >= self._config.cards and self._finished is None:
                self._finished = time.perf_counter()

    def _decrypt(self, message: Any) -> ResultMessage:
        started = time.perf_counter()
        card = CardMessage.from_json(message["Body"])
        answer = self._kms.decrypt(
            CiphertextBlob=card.ciphertext,
            EncryptionContext=encryption_context(dict(settings.DEFAULT_ENCRYPTION_CONTEXT), card.card_id),
            Recipient={
                "AttestationDocument": self._key.attestation_document,
                "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM,
            },
        )
        plaintext = cms.unwrap_ciphertext_for_recipient(
            answer["CiphertextForRecipient"], self._key.private_key
        )
        last4 = cards.last_four(plaintext.decode("ascii"))
        elapsed_ms = (time.perf_counter() - started) * 1000
        with self._lock:
            self.latencies_ms.append(elapsed_ms)
        return ResultMessage(
            card.card_id, message["MessageId"], "ok", last4=last4, enclave_ms=round(elapsed_ms, 2)
        )


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in the inclusive method; a single value is both."""
    if len(values) < 2:
        only = values[0] if values else 0.0
        return only, only
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), cuts[98]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.local.ceiling", description=__doc__)
    p.add_argument("--endpoint", required=True, help="the emulator's HTTP URL (SQS)")
    p.add_argument(
        "--kms-endpoint", required=True, help="the emulator's HTTPS URL (KMS, as the enclave uses)"
    )
    p.add_argument("--pki", type=Path, required=True)
    p.add_argument("--pin", required=True, help="the PCR0 to attest (hex)")
    p.add_argument("--cards-queue-url", required=True)
    p.add_argument("--results-queue-url", required=True)
    p.add_argument("--cards", type=int, required=True)
    p.add_argument("--pollers", type=int, default=DEFAULT_POLLERS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure()
    a = parser().parse_args(argv)
    config = CeilingSettings(
        a.endpoint, a.kms_endpoint, a.pki, bytes.fromhex(a.pin), a.cards_queue_url, a.results_queue_url,
        a.cards, a.pollers,
    )  # fmt: skip
    ceiling = Ceiling(config)
    meter = CpuMeter({"ceiling": os.getpid()})
    meter.start()
    seconds = ceiling.run()
    cpu_ms_per_card = meter.stop()["ceiling"] * 1000 / max(len(ceiling.latencies_ms), 1)
    p50, p99 = percentiles(ceiling.latencies_ms)
    summary = {"cards": len(ceiling.latencies_ms), "seconds": round(seconds, 3)}
    summary |= {"cpu_ms_per_card": round(cpu_ms_per_card, 2)}
    summary |= {"cards_per_s": round(len(ceiling.latencies_ms) / seconds, 1), "p50_ms": round(p50, 1)}
    print(json.dumps({**summary, "p99_ms": round(p99, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

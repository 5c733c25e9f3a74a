"""Queues: cards (with a dead-letter queue) and results, SSE-SQS encrypted, TLS enforced, deleted on destroy.

SQS-managed encryption on purpose: a customer managed key would make every consumer need kms:Decrypt,
and nothing but the attested enclave may hold that permission.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from app.shared import deployment


class Queues(Construct):
    """The three queues of the data flow."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter = self._queue(
            "DeadLetterQueue",
            retention_s=deployment.DEAD_LETTER_RETENTION_S,
            visibility_s=deployment.RESULTS_VISIBILITY_TIMEOUT_S,
        )
        self.cards = self._queue(
            "CardsQueue",
            retention_s=deployment.CARDS_RETENTION_S,
            visibility_s=deployment.CARDS_VISIBILITY_TIMEOUT_S,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter, max_receive_count=deployment.MAX_RECEIVE_COUNT
            ),
        )
        self.results = self._queue(
            "ResultsQueue",
            retention_s=deployment.RESULTS_RETENTION_S,
            visibility_s=deployment.RESULTS_VISIBILITY_TIMEOUT_S,
        )
        Validations.of(self.results).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="Results carry only a card's last 4 digits and status for the producer to print; "
                "a result "
                "nobody reads expires with the retention period, there is nothing to redrive.",
            )
        )

    def _queue(
        self,
        construct_id: str,
        *,
        retention_s: int,
        visibility_s: int,
        dead_letter_queue: sqs.DeadLetterQueue | None = None,
    ) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(retention_s),
            visibility_timeout=Duration.seconds(visibility_s),
            receive_message_wait_time=Duration.seconds(deployment.LONG_POLL_WAIT_S),
            dead_letter_queue=dead_letter_queue,
            removal_policy=RemovalPolicy.DESTROY,
        )

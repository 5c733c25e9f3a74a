"""The nitro-enclave-demo stack: composition only; each concern lives in infra/constructs/."""

from __future__ import annotations

from aws_cdk import Aws, Stack
from constructs import Construct

from infra import constants
from infra.constructs.enclave_host import EnclaveHost, ParameterNames
from infra.constructs.key import EnclaveKey
from infra.constructs.network import Network
from infra.constructs.observability import Observability
from infra.constructs.outputs import Outputs, OutputValues
from infra.constructs.queues import Queues
from infra.constructs.run_documents import RunDocuments
from infra.settings import Settings


class NitroEnclaveDemoStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: Settings) -> None:
        super().__init__(
            scope,
            construct_id,
            description="nitro-enclave-demo: card numbers decrypted only inside an attested Nitro Enclave",
        )
        prefix = f"/{constants.PROJECT}/{Aws.STACK_NAME}"
        names = ParameterNames(measurements=f"{prefix}/measurements", pinned_pcr0=f"{prefix}/pinned-pcr0")
        network = Network(self, "Network", log_retention_days=settings.log_retention_days)
        queues = Queues(self, "Queues")
        observability = Observability(
            self, "Observability", log_retention_days=settings.log_retention_days, queues=queues
        )
        host = EnclaveHost(
            self,
            "EnclaveHost",
            settings=settings,
            network=network,
            queues=queues,
            parameter_names=names,
            log_group=observability.log_group,
        )
        documents = RunDocuments(self, "RunDocuments")
        pcr0 = settings.enclave_pcr0 or host.measured_pcr0
        key = EnclaveKey(
            self,
            "Key",
            alias=settings.key_alias,
            role=host.role,
            pcr0=pcr0,
            debug=settings.enclave_debug,
            encryption_context=settings.encryption_context,
            pinned_parameter_name=names.pinned_pcr0,
        )
        Outputs(
            self,
            "Outputs",
            values=OutputValues(
                instance_id=host.instance.instance_id,
                enclave_cid=settings.enclave_cid,
                cards_queue_url=queues.cards.queue_url,
                dead_letter_queue_url=queues.dead_letter.queue_url,
                results_queue_url=queues.results.queue_url,
                key_arn=key.key.key_arn,
                key_alias=key.alias_name,
                measurements_parameter=names.measurements,
                pinned_pcr0_parameter=names.pinned_pcr0,
                pinned_pcr0=key.pinned_pcr0.string_value,
                debug=settings.enclave_debug,
                log_group_name=observability.log_group.log_group_name,
                dashboard_url=observability.dashboard_url,
                dead_letter_alarm_name=observability.dead_letter_alarm.alarm_name,
                send_cards_document=documents.send_cards.ref,
                status_document=documents.status.ref,
            ),
        )

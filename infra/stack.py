"""The nitro-enclave-demo stack: composition only; each concern lives in infra/constructs/."""

from __future__ import annotations

from aws_cdk import Stack
from constructs import Construct

from infra.constructs.code_asset import code_asset
from infra.constructs.enclave_host import EnclaveHost
from infra.constructs.enclave_image import EnclaveImage
from infra.constructs.host_role import host_role
from infra.constructs.key import EnclaveKey
from infra.constructs.log_key import LogKey
from infra.constructs.network import Network
from infra.constructs.observability import Observability
from infra.constructs.outputs import Outputs, OutputValues
from infra.constructs.parameters import ParameterNames
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
        names = ParameterNames.for_stack()
        LogKey(self, "LogKey")  # encrypts and names every log group of this stack
        network = Network(
            self, "Network", log_retention_days=settings.log_retention_days, mode=settings.network
        )
        queues = Queues(self, "Queues")
        observability = Observability(
            self, "Observability", log_retention_days=settings.log_retention_days, queues=queues
        )
        # One code asset: CodeBuild builds from it the EIF and the host bundle; hosts never read it (they
        # install the bundle's exact version, checked against its SHA-256).
        code = code_asset(self, "Code")
        image = EnclaveImage(
            self,
            "EnclaveImage",
            code=code,
            expected_pcr0=settings.enclave_pcr0,
            retire_previous=settings.retire_previous,
            nitro_cli_version=settings.nitro_cli_version,
        )
        role = host_role(
            self,
            "HostRole",
            queues=queues,
            parameter_names=names,
            image=image,
            log_group=observability.log_group,
        )
        # Isolated mode: what the hosts read from S3 passes the gateway endpoint's policy too.
        network.allow_s3_reads(
            "ProjectCode", ["s3:GetObject"], [code.bucket.arn_for_objects(code.s3_object_key)]
        )
        network.allow_s3_reads(
            "BuildArtifacts", ["s3:GetObject", "s3:GetObjectVersion"], [image.bucket.arn_for_objects("*")]
        )
        key = EnclaveKey(
            self,
            "Key",
            alias=settings.key_alias,
            role=role,
            image=image,
            debug=settings.enclave_debug,
            encryption_context=settings.encryption_context,
            parameter_names=names,
        )
        host = EnclaveHost(
            self,
            "EnclaveHost",
            settings=settings,
            network=network,
            queues=queues,
            parameter_names=names,
            log_group=observability.log_group,
            image=image,
            role=role,
            key_arn=key.key.key_arn,
        )
        # A host's canary encrypts and decrypts with the key, by its ARN: no host boots before the key exists
        # and accepts the new PCR0 (KMS's own propagation delay is the canary's to retry).
        host.boot_after(key.key)
        documents = RunDocuments(self, "RunDocuments")
        Outputs(
            self,
            "Outputs",
            values=OutputValues(
                group_name=host.group.auto_scaling_group_name,
                enclave_cid=settings.enclave_cid,
                cards_queue_url=queues.cards.queue_url,
                dead_letter_queue_url=queues.dead_letter.queue_url,
                results_queue_url=queues.results.queue_url,
                key_arn=key.key.key_arn,
                key_alias=key.alias_name,
                measurements_parameter=names.measurements,
                pinned_pcr0_parameter=names.pinned_pcr0,
                pinned_pcr0=image.pcr0,
                accepted_pcr0=image.accepted_pcr0,
                nitro_cli_version=image.nitro_cli_version,
                eif_location=image.eif_key,
                debug=settings.enclave_debug,
                log_group_name=observability.log_group.log_group_name,
                dashboard_url=observability.dashboard_url,
                dead_letter_alarm_name=observability.dead_letter_alarm.alarm_name,
                boot_failure_alarm_name=observability.boot_failure_alarm.alarm_name,
                send_cards_document=documents.send_cards.ref,
                status_document=documents.status.ref,
            ),
        )

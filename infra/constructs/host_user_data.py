"""The hosts' user data: the real files in infra/constructs/host/, rendered by CloudFormation (Fn::Sub).

demo.env carries every deploy-time value a host needs, the pinned EIF's exact object version and PCR0 among
them; the user data writes it (and the CloudWatch agent's configuration, rendered from host_logs.py),
installs the host bundle (the exact version and SHA-256 the build resource names) and hands over to
bootstrap.sh from it. Hosts never read the CDK code asset: only CodeBuild builds from it. Nothing here
builds or measures an image.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Fn
from aws_cdk import aws_logs as logs

from app.shared import deployment
from app.shared import settings as app_settings
from infra import constants
from infra.constructs import host_logs
from infra.constructs.enclave_image import EnclaveImage
from infra.constructs.parameters import ParameterNames
from infra.constructs.queues import Queues
from infra.settings import Settings, render_context


def host_file(name: str) -> str:
    return (constants.HOST_FILES_DIR / name).read_text(encoding="utf-8")


def heredoc_body(name: str) -> str:
    """A host file as the body of a user-data heredoc: without its final newline, because the line that
    holds the body already ends in one. Left in, it becomes a trailing blank line, and a blank line after
    `---` is an error to the Nitro Enclaves allocator's parser."""
    return host_file(name).removesuffix("\n")


@dataclass(frozen=True)
class UserDataInputs:
    settings: Settings
    queues: Queues
    names: ParameterNames
    log_group: logs.ILogGroup
    image: EnclaveImage
    signal_resource: str  # the group's logical id, a plain string
    key_arn: str  # Fn::GetAtt of the card key's Arn: the programs refuse an alias (app.keypolicy.key_arn)


def render_user_data(inputs: UserDataInputs) -> str:
    s, image = inputs.settings, inputs.image
    sizing = {"EnclaveCpuCount": str(s.enclave_cpu_count), "EnclaveMemoryMib": str(s.enclave_memory_mib)}
    demo_env = Fn.sub(
        heredoc_body("demo.env"),
        {
            **sizing,
            "CardsQueueUrl": inputs.queues.cards.queue_url,
            "ResultsQueueUrl": inputs.queues.results.queue_url,
            "DeadLetterQueueUrl": inputs.queues.dead_letter.queue_url,
            "KeyArn": inputs.key_arn,
            "EncryptionContext": render_context(s.encryption_context),
            "EnclaveCid": str(s.enclave_cid),
            "EnclavePort": str(app_settings.ENCLAVE_PORT),
            "EnclaveDebug": "true" if s.enclave_debug else "false",
            "EifBucket": image.bucket.bucket_name,
            "EifKey": image.eif_key,
            "EifVersion": image.eif_version,
            # Always the build's own PCR0: `-c enclave_pcr0` is checked against it by the build's handler.
            "ExpectedPcr0": image.pcr0,
            "BundleKey": image.bundle_key,
            "BundleVersion": image.bundle_version,
            "BundleSha256": image.bundle_sha256,
            "SignalResource": inputs.signal_resource,
            "MeasurementsParameter": inputs.names.measurements,
            "PinnedPcr0Parameter": inputs.names.pinned_pcr0,
            "LogGroupName": inputs.log_group.log_group_name,
            "VsockProxyWorkers": str(deployment.KMS_CONNECTIONS),
        },
    )
    return Fn.sub(
        host_file("user-data.sh"),
        {
            "SignalResource": inputs.signal_resource,
            # The host bundle: exactly the object version the build wrote, and its SHA-256.
            "BundleBucket": image.bucket.bucket_name,
            "BundleKey": image.bundle_key,
            "BundleVersion": image.bundle_version,
            "BundleSha256": image.bundle_sha256,
            "DemoEnv": demo_env,
            "AllocatorYaml": Fn.sub(heredoc_body("allocator.yaml"), sizing),
            "VsockProxyYaml": Fn.sub(heredoc_body("vsock-proxy.yaml")),
            "CloudWatchAgentJson": Fn.sub(
                host_logs.agent_config_json(), {"LogGroupName": inputs.log_group.log_group_name}
            ),
        },
    )

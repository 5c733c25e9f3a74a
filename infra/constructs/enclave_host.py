"""Enclave host: the parent EC2 instance, its role, its first-boot user data and the wait condition that holds
the deploy until the enclave answers. Owns the instance's permissions, which never include any KMS action:
the key policy alone decides who may Encrypt, and Decrypt needs an attestation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnResource, Fn, Stack, Token, Validations
from aws_cdk import aws_cloudformation as cfn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from app.shared import deployment
from app.shared import settings as app_settings
from infra import constants
from infra.constructs.code_asset import code_asset, source_digest
from infra.constructs.network import Network
from infra.constructs.queues import Queues
from infra.settings import Settings

SECONDS_PER_MINUTE = 60
RECEIVE_ACTIONS = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility")


@dataclass(frozen=True)
class ParameterNames:
    """SSM parameter names; known before the parameters exist, so policies can name them without a cycle."""

    measurements: str
    pinned_pcr0: str


def host_file(name: str) -> str:
    return (constants.HOST_FILES_DIR / name).read_text(encoding="utf-8")


def heredoc_body(name: str) -> str:
    """A host file as the body of a user-data heredoc: without its final newline, because the line that
    holds the body already ends in one. Left in, it becomes a trailing blank line, and a blank line after
    `---` is an error to the Nitro Enclaves allocator's parser."""
    return host_file(name).removesuffix("\n")


class EnclaveHost(Construct):
    """The instance, its role and the boot signal carrying the measured PCR0."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        network: Network,
        queues: Queues,
        parameter_names: ParameterNames,
        log_group: logs.ILogGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = log_group
        self.code = code_asset(self, "Code")
        self.role = self._role(queues=queues, parameter_names=parameter_names)
        # A new boot generation (code, host files or settings changed) gets a new handle and wait condition,
        # so a replaced instance always signals afresh and the key re-pins to the new measurement.
        generation = _generation(self.code.asset_hash, source_digest(constants.REPO_ROOT / "infra"), settings)
        handle = cfn.CfnWaitConditionHandle(self, f"BootSignal{generation}")
        user_data = self._user_data(settings=settings, queues=queues, names=parameter_names, handle=handle)
        self.instance = self._instance(settings=settings, network=network, user_data=user_data)
        self.boot_complete = cfn.CfnWaitCondition(
            self,
            f"BootComplete{generation}",
            handle=handle.ref,
            count=1,
            timeout=str(settings.boot_timeout_minutes * SECONDS_PER_MINUTE),
        )
        self.boot_complete.node.add_dependency(self.instance)
        self.measured_pcr0 = Fn.select(
            constants.SIGNAL_DATA_INDEX, Fn.split('"', Token.as_string(self.boot_complete.attr_data))
        )
        self.measurements = _measurements_parameter(self, parameter_names.measurements, self.measured_pcr0)

    def _instance(self, *, settings: Settings, network: Network, user_data: str) -> ec2.Instance:
        instance = ec2.Instance(
            self,
            "Instance",
            vpc=network.vpc,
            vpc_subnets=network.public_subnets,
            security_group=network.security_group,
            associate_public_ip_address=True,
            instance_type=ec2.InstanceType(settings.instance.name),
            machine_image=_amazon_linux_2023(arm64=settings.instance.arm64),
            role=self.role,
            enclave_enabled=True,
            http_tokens=ec2.HttpTokens.REQUIRED,
            http_endpoint=True,
            http_put_response_hop_limit=1,
            block_devices=[_root_volume()],
            user_data=ec2.UserData.custom(user_data),
            user_data_causes_replacement=True,
            detailed_monitoring=False,
        )
        cfn_instance = instance.node.default_child
        if isinstance(cfn_instance, CfnResource):
            # cfn-lint knows only ami-* ids; EC2 resolves 'resolve:ssm:' itself (RunInstances accepts it).
            cfn_instance.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E1152"]}})
        Validations.of(instance).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::E1152",
                reason="ImageId 'resolve:ssm:<AL2023 parameter>' is resolved by EC2 at launch (RunInstances "
                "accepts it): no synth-time lookup, and a newer AMI never replaces the instance "
                "behind the pin.",
            )
        )
        return instance

    def _role(self, *, queues: Queues, parameter_names: ParameterNames) -> iam.Role:
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="nitro-enclave-demo parent: SSM, queues, parameters; KMS only via the key policy",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        cards, results, dlq = queues.cards.queue_arn, queues.results.queue_arn, queues.dead_letter.queue_arn
        grants: list[tuple[str, list[str], list[str]]] = [
            ("RelayReadsCards", [*RECEIVE_ACTIONS, "sqs:GetQueueAttributes", "sqs:GetQueueUrl"], [cards]),
            ("ProducerSendsCards", ["sqs:SendMessage"], [cards]),
            (
                "RelayPublishesResultsAndDeadLetters",
                ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"],
                [results, dlq],
            ),
            ("ProducerReadsResults", list(RECEIVE_ACTIONS), [results]),
            (
                "ReadPinnedMeasurement",
                ["ssm:GetParameter"],
                [_parameter_arn(self, parameter_names.pinned_pcr0)],
            ),
            (
                "FetchProjectCode",
                ["s3:GetObject"],
                [self.code.bucket.arn_for_objects(self.code.s3_object_key)],
            ),
        ]
        for sid, actions, resources in grants:
            role.add_to_policy(iam.PolicyStatement(sid=sid, actions=actions, resources=resources))
        _allow_operations(role, self.log_group)
        return role

    def _user_data(
        self, *, settings: Settings, queues: Queues, names: ParameterNames, handle: cfn.CfnWaitConditionHandle
    ) -> str:
        sizing = {
            "EnclaveCpuCount": str(settings.enclave_cpu_count),
            "EnclaveMemoryMib": str(settings.enclave_memory_mib),
        }
        demo_env = Fn.sub(
            heredoc_body("demo.env"),
            {
                **sizing,
                "CardsQueueUrl": queues.cards.queue_url,
                "ResultsQueueUrl": queues.results.queue_url,
                "DeadLetterQueueUrl": queues.dead_letter.queue_url,
                "KeyAlias": settings.key_alias,
                "EncryptionContext": json.dumps(dict(settings.encryption_context), separators=(",", ":")),
                "EnclaveCid": str(settings.enclave_cid),
                "EnclavePort": str(app_settings.ENCLAVE_PORT),
                "EnclaveDebug": "true" if settings.enclave_debug else "false",
                "ExpectedPcr0": settings.enclave_pcr0,
                "MeasurementsParameter": names.measurements,
                "PinnedPcr0Parameter": names.pinned_pcr0,
                "LogGroupName": self.log_group.log_group_name,
                "VsockProxyWorkers": str(deployment.KMS_CONNECTIONS),
            },
        )
        return Fn.sub(
            host_file("user-data.sh"),
            {
                "SignalUrl": handle.ref,
                "CodeBucket": self.code.s3_bucket_name,
                "CodeKey": self.code.s3_object_key,
                "DemoEnv": demo_env,
                "AllocatorYaml": Fn.sub(heredoc_body("allocator.yaml"), sizing),
                "VsockProxyYaml": Fn.sub(heredoc_body("vsock-proxy.yaml")),
                "CloudWatchAgentJson": Fn.sub(
                    heredoc_body("amazon-cloudwatch-agent.json"),
                    {"LogGroupName": self.log_group.log_group_name},
                ),
            },
        )


def _allow_operations(role: iam.Role, log_group: logs.ILogGroup) -> None:
    """The CloudWatch agent writes to the stack's log group only. `nitro-demo status` reads the cards queue's
    age of oldest message: a CloudWatch metric, not a queue attribute; metric reads have no resource-level
    permissions."""
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ShipLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[log_group.log_group_arn],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="StatusReadsQueueAge", actions=["cloudwatch:GetMetricStatistics"], resources=["*"]
        )
    )
    Validations.of(role).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="Only cloudwatch:GetMetricStatistics (read-only, for `nitro-demo status`) has Resource *: "
            "CloudWatch metric reads support no resource-level permissions.",
        )
    )


def _measurements_parameter(scope: Construct, name: str, measured_pcr0: str) -> ssm.StringParameter:
    """What the instance measured, as its boot signal reported it. CloudFormation writes it, and only
    CloudFormation: the instance used to overwrite it, so the stack drifted and an update reset it."""
    parameter = ssm.StringParameter(
        scope,
        "Measurements",
        parameter_name=name,
        simple_name=False,
        string_value=Fn.join("", ['{"PCR0":"', measured_pcr0, '"}']),
        description="nitro-enclave-demo: PCR0 of the EIF built on the instance, from its boot signal",
    )
    resource = parameter.node.default_child
    if isinstance(resource, CfnResource):
        # cfn-lint types WaitCondition.Data as an object (E1017 under Fn::Select, E1022 under Fn::Join);
        # CloudFormation returns the signals' JSON text.
        resource.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E1017", "E1022"]}})
    return parameter


def _generation(asset_hash: str, infra_digest: str, settings: Settings) -> str:
    digest = hashlib.sha256(f"{asset_hash}|{infra_digest}|{settings!r}".encode())
    return digest.hexdigest()[:12]


def _amazon_linux_2023(*, arm64: bool) -> ec2.IMachineImage:
    # Resolved by EC2 at launch: no lookup at synth, and a newer AMI never silently replaces the instance.
    parameter = constants.AL2023_AMI_PARAMETER.format(arch="arm64" if arm64 else "x86_64")
    return ec2.MachineImage.resolve_ssm_parameter_at_launch(parameter, os=ec2.OperatingSystemType.LINUX)


def _root_volume() -> ec2.BlockDevice:
    return ec2.BlockDevice(
        device_name=constants.ROOT_DEVICE,
        volume=ec2.BlockDeviceVolume.ebs(
            constants.ROOT_VOLUME_GIB,
            volume_type=ec2.EbsDeviceVolumeType.GP3,
            encrypted=True,
            delete_on_termination=True,
        ),
    )


def _parameter_arn(scope: Construct, name: str) -> str:
    return Stack.of(scope).format_arn(service="ssm", resource="parameter", resource_name=name.lstrip("/"))

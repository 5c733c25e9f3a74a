"""Enclave hosts: an Auto Scaling group of parent instances from one launch template, on the one cards queue.

Each host downloads exactly the EIF version the build produced, refuses it unless its PCR0 is the pinned one,
proves the whole crypto path with a canary decrypt, and only then signals the group's creation policy or
rolling update. Owns the launch template, the group and its update policy; the role is host_role.py's, the
user data host_user_data.py's.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Duration, Tags, Validations
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from infra import constants
from infra.constructs.enclave_image import EnclaveImage
from infra.constructs.host_user_data import UserDataInputs, render_user_data
from infra.constructs.network import Network
from infra.constructs.parameters import ParameterNames
from infra.constructs.queues import Queues
from infra.settings import Settings

# The group's logical id, pinned: the hosts name it in `aws cloudformation signal-resource` (demo.env's
# SIGNAL_RESOURCE), so it must be a plain string known at synth, never a CDK hash that could change.
GROUP_LOGICAL_ID = "EnclaveHostGroup"
HOST_NAME_TAG = "nitro-enclave-demo-host"


class EnclaveHost(Construct):
    """The launch template and the group, with the hosts' `role` (host_role.py, made first because the card
    key's policy names it) and the card key's ARN (`key_arn`, what every program on a host names the key by);
    `boot_after(key)` orders the group."""

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
        image: EnclaveImage,
        role: iam.Role,
        key_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = role
        user_data = render_user_data(
            UserDataInputs(
                settings=settings,
                queues=queues,
                names=parameter_names,
                log_group=log_group,
                image=image,
                signal_resource=GROUP_LOGICAL_ID,
                key_arn=key_arn,
            )
        )
        self.launch_template = self._launch_template(settings, network, user_data)
        self.group = self._group(settings, network)

    def boot_after(self, *dependencies: IConstruct) -> None:
        """No host boots (at creation or in a roll) before `dependencies` exist and are updated: the key,
        accepting the new PCR0 (the user data's reference to its ARN orders the launch template too)."""
        self.group.node.add_dependency(*dependencies)

    def _launch_template(self, settings: Settings, network: Network, user_data: str) -> ec2.LaunchTemplate:
        template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            instance_type=ec2.InstanceType(settings.instance.name),
            machine_image=_amazon_linux_2023(arm64=settings.instance.arm64),
            role=self.role,
            security_group=network.security_group,
            associate_public_ip_address=network.public_address,
            nitro_enclave_enabled=True,
            require_imdsv2=True,  # CDK renders MetadataOptions.HttpTokens "required" from this
            http_endpoint=True,
            http_put_response_hop_limit=1,
            block_devices=[_root_volume()],
            user_data=ec2.UserData.custom(user_data),
            detailed_monitoring=False,
        )
        Tags.of(template).add("Name", HOST_NAME_TAG)
        cfn_template = template.node.default_child
        if isinstance(cfn_template, CfnResource):
            # cfn-lint knows only ami-* ids; EC2 resolves 'resolve:ssm:' itself (launch templates accept it).
            cfn_template.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E1152"]}})
        Validations.of(template).acknowledge(
            Acknowledgment(
                id="CloudFormation-Validate::E1152",
                reason="ImageId 'resolve:ssm:<AL2023 parameter>' is resolved by EC2 at launch (launch "
                "templates accept it): no synth-time lookup, and a newer AMI never replaces a host "
                "behind the pin.",
            )
        )
        return template

    def _group(self, settings: Settings, network: Network) -> autoscaling.AutoScalingGroup:
        boot_timeout = Duration.minutes(settings.boot_timeout_minutes)
        group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=network.vpc,
            vpc_subnets=network.host_subnets,
            launch_template=self.launch_template,
            # CloudFormation User Guide, "UpdatePolicy attribute" (AutoScalingRollingUpdate):
            # MinInstancesInService must be less than the group's MaxSize. With MaxSize = hosts + 1 and
            # MinInstancesInService = hosts, a roll first launches one new host beside the old ones and
            # waits for its signal before it terminates an old one: the cards queue always keeps `hosts`
            # serving hosts, including the one host of the default deployment.
            min_capacity=settings.hosts,
            desired_capacity=settings.hosts,
            max_capacity=settings.hosts + 1,
            signals=autoscaling.Signals.wait_for_count(settings.hosts, timeout=boot_timeout),
            update_policy=autoscaling.UpdatePolicy.rolling_update(
                max_batch_size=1,
                min_instances_in_service=settings.hosts,
                wait_on_resource_signals=True,
                pause_time=boot_timeout,
            ),
        )
        # The group goes before the gateway's attachment and the public routes on delete: otherwise
        # CloudFormation may detach the gateway while a host still holds a public address, and the
        # detach fails with DependencyViolation (DELETE_FAILED; CloudFormation Template Reference, "DependsOn
        # attribute", "When a DependsOn attribute is required"). In isolated mode the same holds for the VPC
        # endpoints: no host boots before them, and none outlives them.
        group.node.add_dependency(*network.host_path)
        cfn_group = group.node.default_child
        if isinstance(cfn_group, CfnResource):
            cfn_group.override_logical_id(GROUP_LOGICAL_ID)
        Tags.of(group).add("Name", HOST_NAME_TAG)
        _acknowledge_group(group)
        return group


def _acknowledge_group(group: autoscaling.AutoScalingGroup) -> None:
    Validations.of(group).acknowledge(
        Acknowledgment(
            id="AwsSolutions-AS1",
            reason="No load balancer: the hosts pull work from SQS. Health is the boot signal (creation "
            "policy and rolling update wait for each host's canary) and EC2 status checks.",
        ),
        Acknowledgment(
            id="AwsSolutions-AS2",
            reason="A failed boot already fails the deploy with the host, the step and KMS's answer in "
            "the stack events; the dead-letter alarm covers cards. No SNS topic to keep for the demo.",
        ),
        Acknowledgment(
            id="AwsSolutions-AS3",
            reason="The group never changes its size on its own (min = desired = hosts), but it does "
            "replace a host that fails its EC2 status checks, outside any stack update. Such a replacement "
            "boots and runs its canary like any host, but its signal reaches no pending update, so a "
            "failed boot there is reported by no stack event: the launch and the termination are in the "
            "group's activity history and CloudTrail only. No SNS topic to keep for the demo.",
        ),
    )


def _amazon_linux_2023(*, arm64: bool) -> ec2.IMachineImage:
    # Resolved by EC2 at launch: no lookup at synth, and a newer AMI never silently replaces a host.
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

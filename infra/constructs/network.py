"""Network: a small VPC of its own with public subnets, no NAT gateway, flow logs, and a security group with
no inbound rule. Owns nothing else; the instance reaches AWS APIs through its public address, HTTPS only."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct, IDependable

VPC_CIDR = "10.42.0.0/24"
SUBNET_MASK = 27
MAX_AZS = 2
HTTPS_PORT = 443
RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}


class Network(Construct):
    """The VPC, its flow log and the instance's security group (egress HTTPS only, no ingress at all)."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=MAX_AZS,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=SUBNET_MASK
                )
            ],
        )
        flow_log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "HostSecurityGroup",
            vpc=self.vpc,
            description="nitro-enclave-demo parent: no inbound rule (SSM only); outbound HTTPS to AWS APIs",
            allow_all_outbound=False,
        )
        # dnf repositories, PyPI, the container registry, S3, SSM, SQS and KMS are all HTTPS endpoints.
        self.security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "HTTPS to AWS APIs and package repositories"
        )
        self.public_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
        # What a host's public address needs: the gateway's attachment ("VPCGW", the child CDK's Vpc names
        # it) and each public subnet's default route (its internet_connectivity_established).
        self.internet_path: list[IDependable] = [
            self.vpc.node.find_child("VPCGW"),
            *(subnet.internet_connectivity_established for subnet in self.vpc.public_subnets),
        ]

"""Network: a small VPC of its own, no NAT gateway, flow logs, the hosts' security group (no inbound rule).

Two modes (settings `network`): "public" (default) puts the hosts in public subnets, reaching AWS APIs through
their public address, HTTPS only; "isolated" puts them in subnets with no route to the internet, reaching
exactly the APIs of endpoints.py through VPC endpoints. Owns nothing else.
"""

from __future__ import annotations

from aws_cdk import Annotations, Aws, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IDependable

from infra.constructs import endpoints
from infra.constructs.s3_prefix_list import s3_prefix_list_id

VPC_CIDR = "10.42.0.0/24"
SUBNET_MASK = 27
MAX_AZS = 2
HTTPS_PORT = 443
PUBLIC, ISOLATED = "public", "isolated"
# Said at every isolated synth until the build's host bundle carries the host's wheels.
PIP_NEEDS_PYPI = (
    "network=isolated: the hosts have no route to PyPI, and bootstrap.sh's step `venv` still runs `pip "
    "install` from it, so every host fails its boot at step `venv` (the deploy fails and says so) until the "
    "build's host bundle carries the host's wheels and bootstrap.sh installs them with --no-index "
    '(README, "Network: public (default) or isolated")'
)
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
    """The VPC, its flow log and the hosts' security group; `host_subnets` for the group, `host_path` (what
    must exist before a host boots and outlive it on delete), `public_address` for the launch template and,
    in isolated mode, `allow_s3_reads(...)` to admit the build's artifacts through the S3 gateway endpoint."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int, mode: str) -> None:
        super().__init__(scope, construct_id)
        self.isolated = mode == ISOLATED
        self.public_address = not self.isolated
        subnet_type = ec2.SubnetType.PRIVATE_ISOLATED if self.isolated else ec2.SubnetType.PUBLIC
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(VPC_CIDR),
            max_azs=MAX_AZS,
            nat_gateways=0,
            restrict_default_security_group=False,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Isolated" if self.isolated else "Public",
                    subnet_type=subnet_type,
                    cidr_mask=SUBNET_MASK,
                )
            ],
        )
        self._flow_log(log_retention_days)
        self.security_group = ec2.SecurityGroup(
            self,
            "HostSecurityGroup",
            vpc=self.vpc,
            description="nitro-enclave-demo parent: no inbound rule (SSM only); outbound HTTPS to AWS APIs",
            allow_all_outbound=False,
        )
        self.host_subnets = ec2.SubnetSelection(subnet_type=subnet_type)
        self.s3_gateway: ec2.GatewayVpcEndpoint | None = None
        if self.isolated:
            self.host_path: list[IDependable] = self._endpoints()
            Annotations.of(self).add_warning_v2("nitro-enclave-demo:isolated-pip-needs-pypi", PIP_NEEDS_PYPI)
        else:
            # dnf repositories, PyPI, the container registry, S3, SSM, SQS and KMS are all HTTPS endpoints.
            self.security_group.add_egress_rule(
                ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "HTTPS to AWS APIs and package repositories"
            )
            # What a host's public address needs: the gateway's attachment ("VPCGW", the child CDK's Vpc
            # names it) and each public subnet's default route (its internet_connectivity_established).
            self.host_path = [
                self.vpc.node.find_child("VPCGW"),
                *(subnet.internet_connectivity_established for subnet in self.vpc.public_subnets),
            ]

    def allow_s3_reads(self, sid: str, actions: list[str], resources: list[str]) -> None:
        """Admit these reads through the S3 gateway endpoint (isolated mode; no-op in public mode, where
        the hosts' IAM role alone limits what they read)."""
        if self.s3_gateway is not None:
            self.s3_gateway.add_to_policy(
                iam.PolicyStatement(
                    sid=sid, principals=[iam.AnyPrincipal()], actions=actions, resources=resources
                )
            )

    def _flow_log(self, log_retention_days: int) -> None:
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

    def _endpoints(self) -> list[IDependable]:
        """One interface endpoint per service of endpoints.py, reachable on 443 from the hosts' security
        group only; the S3 gateway endpoint on the hosts' route tables; the hosts' egress to those only."""
        endpoint_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="nitro-enclave-demo VPC interface endpoints: HTTPS from the host security group only",
            allow_all_outbound=False,
            # Its ingress rule names the hosts' group, whose egress names this one: separate rule
            # resources, or the two groups would depend on each other.
            disable_inline_rules=True,
        )
        endpoint_group.add_ingress_rule(
            ec2.Peer.security_group_id(self.security_group.security_group_id),
            ec2.Port.tcp(HTTPS_PORT),
            "HTTPS from the enclave hosts",
        )
        self.security_group.add_egress_rule(
            ec2.Peer.security_group_id(endpoint_group.security_group_id),
            ec2.Port.tcp(HTTPS_PORT),
            "HTTPS to the VPC interface endpoints",
        )
        created: list[IDependable] = []
        for name in endpoints.INTERFACE_ENDPOINTS:
            endpoint = self.vpc.add_interface_endpoint(
                f"{name.capitalize()}Endpoint",
                service=ec2.InterfaceVpcEndpointAwsService(name),
                subnets=self.host_subnets,
                security_groups=[endpoint_group],
                private_dns_enabled=True,
                open=False,
            )
            if name in endpoints.ACCOUNT_SCOPED_ENDPOINTS:
                endpoint.add_to_policy(_this_account_only())
            if name == "ssm":
                endpoint.add_to_policy(_aws_owned_ssm_reads())
            created.append(endpoint)
        self.s3_gateway = self.vpc.add_gateway_endpoint(
            "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.host_subnets]
        )
        repository = endpoints.AL2023_REPOSITORY_BUCKET.format(region=Aws.REGION)
        self.allow_s3_reads(
            "AmazonLinuxRepositories", ["s3:GetObject"], [f"arn:{Aws.PARTITION}:s3:::{repository}/*"]
        )
        self.security_group.add_egress_rule(
            ec2.Peer.prefix_list(s3_prefix_list_id(self, "S3PrefixList")),
            ec2.Port.tcp(HTTPS_PORT),
            "HTTPS to S3 through the gateway endpoint",
        )
        return [*created, self.s3_gateway]


def _this_account_only() -> iam.PolicyStatement:
    return iam.PolicyStatement(
        sid="ThisAccountOnly",
        principals=[iam.AnyPrincipal()],
        actions=["*"],
        resources=["*"],
        conditions={
            "StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID, "aws:ResourceAccount": Aws.ACCOUNT_ID}
        },
    )


def _aws_owned_ssm_reads() -> iam.PolicyStatement:
    """Reads of AWS-owned SSM documents and public parameters (owned by no account of ours), which the SSM
    Agent and Run Command may name: the exception AWS's own data-perimeter example for the ssm endpoint makes
    (aws-samples/data-perimeter-policy-examples, vpc_endpoint_policies/ssm_endpoint_policy.json)."""
    return iam.PolicyStatement(
        sid="ThisAccountReadsAwsOwnedSsmResources",
        principals=[iam.AnyPrincipal()],
        actions=["ssm:Describe*", "ssm:List*", "ssm:Get*"],
        resources=[
            f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}::document/*",
            f"arn:{Aws.PARTITION}:ssm:{Aws.REGION}::parameter/aws/*",
        ],
        conditions={"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}},
    )

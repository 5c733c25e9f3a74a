"""The id of the AWS-managed prefix list for S3 in the stack's region (com.amazonaws.<region>.s3), which the
isolated hosts' security group names as its one egress destination besides the interface endpoints.

CloudFormation has no attribute or parameter for it and synth does no lookups, so a CDK AwsCustomResource asks
EC2 (DescribeManagedPrefixLists, read-only) at deploy. Its function runs outside the VPC.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

RESPONSE_FIELD = "PrefixLists.0.PrefixListId"
# The construct id CDK gives the one function behind every AwsCustomResource of a stack (its provider's uuid).
SINGLETON_ID = "AWS679f53fac002430cb0da5b7982bd2287"


def s3_prefix_list_id(scope: Construct, construct_id: str) -> str:
    call = cr.AwsSdkCall(
        service="EC2",
        action="describeManagedPrefixLists",
        parameters={"Filters": [{"Name": "prefix-list-name", "Values": [f"com.amazonaws.{Aws.REGION}.s3"]}]},
        physical_resource_id=cr.PhysicalResourceId.of(f"com.amazonaws.{Aws.REGION}.s3"),
        output_paths=[RESPONSE_FIELD],
    )
    lookup = cr.AwsCustomResource(
        scope,
        construct_id,
        on_create=call,
        on_update=call,
        install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements(
            [iam.PolicyStatement(actions=["ec2:DescribeManagedPrefixLists"], resources=["*"])]
        ),
    )
    _acknowledge(lookup)
    return lookup.get_response_field(RESPONSE_FIELD)


def _acknowledge(lookup: cr.AwsCustomResource) -> None:
    """Each finding on the resource it is about: the lookup's own policy, and CDK's singleton function that
    serves every AwsCustomResource of the stack (at the stack's root, under CDK's fixed id)."""
    function = Stack.of(lookup).node.find_child(SINGLETON_ID)
    Validations.of(function).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            reason="CDK's AwsCustomResource function (isolated network only: it reads the S3 prefix list id) "
            "writes its own logs with the AWS managed basic execution policy; it holds no other permission.",
        )
    )
    Validations.of(lookup).acknowledge(
        Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ec2:DescribeManagedPrefixLists (read-only) supports no resource-level permission; the "
            "lookup's function can do nothing else.",
        ),
    )

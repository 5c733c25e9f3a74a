"""The deploy-time half of refusing partitions other than `aws` (docs/decisions/partition-and-architecture.md)

The stack is environment-agnostic, so synth may not know the region; infra/settings.py refuses a non-`aws`
region when the CDK CLI does know it. Here the template itself carries the refusal: the `KmsEndpoint` output
looks its DNS suffix up in a mapping keyed by the AWS::Partition pseudo parameter, and the mapping has only
the `aws` key. In aws-cn, aws-us-gov or an isolated partition CloudFormation cannot resolve that lookup, so
the stack operation fails with a template error naming the mapping and the partition, before anything is
created. The output is also what it says: the KMS host the enclave reaches through the parent's vsock-proxy.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnMapping, CfnOutput, Fn, Stack

# Named so that CloudFormation's error ("Unable to get mapping for OnlyTheAwsPartition::aws-cn::...") says
# why.
MAPPING_ID = "OnlyTheAwsPartition"
SUPPORTED_PARTITION = "aws"
KMS_DNS_SUFFIX = "amazonaws.com"


def refuse_other_partitions(stack: Stack) -> CfnOutput:
    """Add the mapping and the `KmsEndpoint` output that resolves only in the `aws` partition."""
    mapping = CfnMapping(
        stack, MAPPING_ID, mapping={SUPPORTED_PARTITION: {"KmsDnsSuffix": KMS_DNS_SUFFIX}}, lazy=False
    )
    suffix = mapping.find_in_map(Aws.PARTITION, "KmsDnsSuffix")
    return CfnOutput(
        stack,
        "KmsEndpoint",
        value=Fn.join("", ["kms.", Aws.REGION, ".", suffix]),
        description="The KMS host the enclave reaches through the parent's vsock-proxy (aws partition only)",
    )

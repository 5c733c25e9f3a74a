"""What CloudFormation creates, created in the emulator from the synthesized template itself: the queues
with their properties, the buckets with theirs (the EIF bucket versioned), the SSM parameters, the
published file assets (the code asset and the handlers'), and, once the build's attributes are known,
the parameters that depend on them. The key is keys.py's; the build is deploy.py's.

Each created resource's Ref and attributes go into one Resolver, so the user data and the key policy are
rendered from the values that exist, never from made-up ones. Physical names follow CloudFormation's
pattern `<stack>-<LogicalId>-<suffix>` (lower case where the service wants it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.local import principals
from app.local.provision import local_client
from rehearsal.cfn import PSEUDO, Resolver
from rehearsal.template import Synthesized, zip_directory

SUFFIX = "REHEARSAL"
QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds")
STACK_ID = f"arn:aws:cloudformation:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:stack/" \
    f"{PSEUDO['AWS::StackName']}/00000000-0000-4000-8000-rehearsal000"  # fmt: skip
Patch = Callable[[str, bytes], bytes]


@dataclass
class Cloud:
    """The emulator seen as the stack's AWS account; `resolver()` renders the template against it."""

    synthesized: Synthesized
    endpoint: str
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    not_enforced: list[str] = field(default_factory=list)  # bucket properties the emulator only stores

    @property
    def region(self) -> str:
        return PSEUDO["AWS::Region"]

    def resolver(self) -> Resolver:
        return Resolver(refs=dict(self.refs), attributes=dict(self.attributes), strict=True)

    def client(self, service: str, principal: principals.LocalPrincipal = principals.ADMINISTRATOR) -> Any:
        """A client as the deployer (CloudFormation acts with an administrator's rights)."""
        return local_client(service, self.endpoint, self.region, principal=principal)

    def physical_name(self, logical_id: str) -> str:
        return f"{PSEUDO['AWS::StackName']}-{logical_id}-{SUFFIX}"[:80]

    def before_build(self, work_dir: Path, patch: Patch) -> None:
        """Everything the build and the hosts need that does not depend on the build's attributes."""
        for logical_id, role in self.synthesized.resources("AWS::IAM::Role").items():
            name = self.physical_name(logical_id)
            if "ec2.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]):
                name = principals.INSTANCE_ROLE_NAME  # the emulator knows the instance role by this name
            self.refs[logical_id] = name
            self.attributes[(logical_id, "Arn")] = f"arn:aws:iam::{PSEUDO['AWS::AccountId']}:role/{name}"
        for logical_id in self.synthesized.resources("AWS::Logs::LogGroup"):
            self.refs[logical_id] = self.physical_name(logical_id)
        for logical_id in self.synthesized.resources("AWS::Lambda::Function"):  # named, not deployed:
            name = self.physical_name(logical_id)[:64]  # provider.py runs the custom resources' handlers
            self.refs[logical_id] = name
            self.attributes[(logical_id, "Arn")] = (
                f"arn:aws:lambda:{self.region}:{PSEUDO['AWS::AccountId']}:function:{name}"
            )
        self._queues()
        self._buckets()
        self.create_parameters(skip_unresolved=True)
        self.publish_assets(work_dir, patch)

    def _queues(self) -> None:
        sqs = self.client("sqs")
        pending = dict(self.synthesized.resources("AWS::SQS::Queue"))
        while pending:  # a queue whose RedrivePolicy names another waits for it, as CloudFormation orders
            for logical_id in list(pending):
                props = pending[logical_id]["Properties"]
                redrive = props.get("RedrivePolicy")
                target = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] if redrive else None
                if target in pending:
                    continue
                attributes = {k: str(props[k]) for k in QUEUE_ATTRIBUTES if k in props}
                if redrive:
                    rendered = {k: self.resolver().text(v) for k, v in redrive.items()}
                    attributes["RedrivePolicy"] = json.dumps(rendered)
                name = self.physical_name(logical_id)
                url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
                self.refs[logical_id] = url
                self.attributes[(logical_id, "Arn")] = arn["QueueArn"]
                self.attributes[(logical_id, "QueueName")] = name
                self.attributes[(logical_id, "QueueUrl")] = url
                del pending[logical_id]

    def _buckets(self) -> None:
        """The stack's buckets with the properties the emulator applies (versioning first: the EIF's
        VersionId comes from it); the others are recorded as stored, not enforced."""
        s3 = self.client("s3")
        for logical_id, bucket in self.synthesized.resources("AWS::S3::Bucket").items():
            props = bucket.get("Properties", {})
            name = str(props.get("BucketName") or self.physical_name(logical_id).lower())[:63]
            s3.create_bucket(Bucket=name)
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
                )
            self.not_enforced += [f"{logical_id}.{k}" for k in props if k not in ("VersioningConfiguration",)]
            self.refs[logical_id] = name
            self.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
            self.attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"
            self.attributes[(logical_id, "RegionalDomainName")] = f"{name}.s3.{self.region}.amazonaws.com"
        for logical_id in self.synthesized.resources("AWS::S3::BucketPolicy"):
            self.not_enforced.append(f"{logical_id} (bucket policy: stored by CloudFormation, not evaluated)")

    def create_parameters(self, *, skip_unresolved: bool) -> None:
        for logical_id in self.synthesized.resources("AWS::SSM::Parameter"):
            props = self.synthesized.properties(logical_id)
            try:
                name, value = self.resolver().text(props["Name"]), self.resolver().text(props["Value"])
            except LookupError:
                if skip_unresolved:
                    continue  # needs the build's attributes: created after it
                raise
            self.client("ssm").put_parameter(Name=name, Value=value, Type=props["Type"], Overwrite=True)
            self.refs[logical_id] = name
            self.attributes[(logical_id, "Value")] = value

    def publish_assets(self, work_dir: Path, patch: Patch) -> None:
        """`cdk deploy`'s asset publishing: every file asset of the manifest to its bucket and key."""
        s3 = self.client("s3")
        buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        for asset in self.synthesized.file_assets().values():
            source = self.synthesized.outdir / asset["source"]["path"]
            for destination in asset["destinations"].values():
                bucket = self.resolver().substitute(destination["bucketName"], {})
                key = self.resolver().substitute(destination["objectKey"], {})
                if asset["source"]["packaging"] == "zip":
                    body = zip_directory(source, work_dir / "assets" / key, patch).read_bytes()
                else:
                    body = source.read_bytes()
                if bucket not in buckets:
                    s3.create_bucket(Bucket=bucket)
                    buckets.add(bucket)
                s3.put_object(Bucket=bucket, Key=key, Body=body)

    def set_attributes(self, logical_id: str, physical_id: str, data: Mapping[str, str]) -> None:
        """A custom resource's Ref (its physical id) and `Fn::GetAtt` values (its Data)."""
        self.refs[logical_id] = physical_id
        for name, value in data.items():
            self.attributes[(logical_id, name)] = value

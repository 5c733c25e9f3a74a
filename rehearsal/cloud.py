"""What CloudFormation would create before and after the instance, created in the emulator from the
synthesized template itself: the queues with their properties, the SSM parameters, the code asset in its
bucket, and - after the boot signal - the pinned PCR0 and the key with the template's own key policy.

Each created resource's Ref and attributes go into one Resolver, so the user data and the key policy are
rendered from the values that exist, never from made-up ones. Physical names follow CloudFormation's
pattern `<stack>-<LogicalId>-<suffix>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.local import principals
from app.local.provision import local_client
from rehearsal.cfn import PSEUDO, Resolver
from rehearsal.template import Synthesized

SUFFIX = "REHEARSAL"
QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds")


@dataclass
class Cloud:
    """The emulator seen as the stack's AWS account; `resolver()` renders the template against it."""

    synthesized: Synthesized
    endpoint: str
    signal_url: str
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

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

    def before_boot(self, code_zip_dir: Path, patch: Callable[[str, bytes], bytes]) -> None:
        """Queues, role and log group names, parameters, the wait handle and the code asset."""
        handle_id, _ = self.synthesized.only("AWS::CloudFormation::WaitConditionHandle")
        self.refs[handle_id] = self.signal_url
        for logical_id, role in self.synthesized.resources("AWS::IAM::Role").items():
            name = self.physical_name(logical_id)
            if "ec2.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]):
                name = principals.INSTANCE_ROLE_NAME  # the emulator knows the instance role by this name
            self.refs[logical_id] = name
            self.attributes[(logical_id, "Arn")] = f"arn:aws:iam::{PSEUDO['AWS::AccountId']}:role/{name}"
        for logical_id in self.synthesized.resources("AWS::Logs::LogGroup"):
            self.refs[logical_id] = self.physical_name(logical_id)
        self._queues()
        for logical_id in self.synthesized.resources("AWS::SSM::Parameter"):
            self._parameter(logical_id, skip_unresolved=True)
        self._code_asset(code_zip_dir, patch)

    def _queues(self) -> None:
        sqs = self.client("sqs")
        pending = dict(self.synthesized.resources("AWS::SQS::Queue"))
        while (
            pending
        ):  # a queue whose RedrivePolicy names another waits for it, as CloudFormation orders them
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

    def _parameter(self, logical_id: str, *, skip_unresolved: bool) -> str | None:
        props = self.synthesized.properties(logical_id)
        try:
            name, value = self.resolver().text(props["Name"]), self.resolver().text(props["Value"])
        except LookupError:
            if skip_unresolved:
                return None  # needs the boot signal (the pinned PCR0): created after it
            raise
        self.client("ssm").put_parameter(Name=name, Value=value, Type=props["Type"], Overwrite=True)
        self.refs[logical_id] = name
        self.attributes[(logical_id, "Value")] = value
        return value

    def _code_asset(self, code_zip_dir: Path, patch: Callable[[str, bytes], bytes]) -> None:
        from rehearsal.template import code_asset_zip  # noqa: PLC0415

        variables = self.synthesized.user_data_variables()
        bucket = self.resolver().text(variables["CodeBucket"])
        key = self.resolver().text(variables["CodeKey"])
        archive = code_asset_zip(self.synthesized, key, code_zip_dir / key, patch)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(archive), bucket, key)

    def after_signal(self, wait_condition_data: str) -> str:
        """Record WaitCondition.Data, create the parameters that depend on it; back: the value of the
        parameter the key policy pins (its `Fn::GetAtt [<Parameter>, Value]`)."""
        condition_id, _ = self.synthesized.only("AWS::CloudFormation::WaitCondition")
        self.attributes[(condition_id, "Data")] = wait_condition_data
        for logical_id in self.synthesized.resources("AWS::SSM::Parameter"):
            if (logical_id, "Value") not in self.attributes:
                self._parameter(logical_id, skip_unresolved=False)
        _, key = self.synthesized.only("AWS::KMS::Key")
        policy = json.dumps(key["Properties"]["KeyPolicy"])
        pinned = [
            value
            for (logical_id, attribute), value in self.attributes.items()
            if attribute == "Value" and json.dumps({"Fn::GetAtt": [logical_id, "Value"]}) in policy
        ]
        if len(pinned) != 1:
            raise LookupError(f"the key policy should pin one SSM parameter's value, found {len(pinned)}")
        return pinned[0]

    def create_key(self) -> str:
        """The KMS key with the template's key policy, rendered, and its alias; the key's ARN.

        The one place the rehearsal creates the key: issue 10's policy evaluator plugs in here.
        """
        kms = self.client("kms")
        key_id, key = self.synthesized.only("AWS::KMS::Key")
        props = key["Properties"]
        policy = json.dumps(_render_tree(self.resolver(), props["KeyPolicy"]))
        created = kms.create_key(Policy=policy, Description=props.get("Description", ""))["KeyMetadata"]
        self.refs[key_id] = created["KeyId"]
        self.attributes[(key_id, "Arn")] = created["Arn"]
        for alias_id in self.synthesized.resources("AWS::KMS::Alias"):
            alias = self.synthesized.properties(alias_id)
            kms.create_alias(
                AliasName=self.resolver().text(alias["AliasName"]),
                TargetKeyId=self.resolver().text(alias["TargetKeyId"]),
            )
        return str(created["Arn"])


def _render_tree(resolver: Resolver, node: Any) -> Any:
    """A JSON document (a policy) with every intrinsic function in it evaluated."""
    if isinstance(node, dict):
        if len(node) == 1 and (next(iter(node)).startswith("Fn::") or "Ref" in node):
            return resolver.evaluate(node)
        return {k: _render_tree(resolver, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_tree(resolver, v) for v in node]
    return node

"""The stack's KMS key, from the template's own key policy: created once the build's attributes exist (the
policy's `kms:RecipientAttestation:ImageSha384` is `Fn::Split` over the build's AcceptedPcr0), its policy
replaced with PutKeyPolicy when a stack update re-renders it, as CloudFormation updates an
AWS::KMS::Key's KeyPolicy in place. The emulator evaluates that policy on every KMS call
(`app.local.kms_enforcement`); `decides` asks the same evaluator about an image that is not running.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.keypolicy import evaluator
from app.keypolicy.document import ENCRYPTION_CONTEXT_PREFIX, IMAGE_SHA384, SID_ATTESTED_DECRYPT
from app.keypolicy.pins import decrypt_grants
from app.local import principals
from rehearsal.cfn import Resolver
from rehearsal.cloud import Cloud

KEY_TYPE = "AWS::KMS::Key"


def card_key(resources: Mapping[str, Any]) -> tuple[str, Any]:
    """(logical id, resource) of the card key among a template's resources: the one key whose policy has the
    attested-Decrypt statement (the stack's other key, for its log groups, has none)."""
    found = [
        (logical_id, resource)
        for logical_id, resource in resources.items()
        if resource["Type"] == KEY_TYPE
        and any(
            statement.get("Sid") == SID_ATTESTED_DECRYPT
            for statement in resource["Properties"]["KeyPolicy"]["Statement"]
        )
    ]
    if len(found) != 1:
        raise LookupError(f"expected one card key in the template, found {[i for i, _ in found]}")
    return found[0]


def render_tree(resolver: Resolver, node: Any) -> Any:
    """A JSON document (a policy) with every intrinsic function in it evaluated."""
    if isinstance(node, dict):
        if len(node) == 1 and (next(iter(node)).startswith("Fn::") or "Ref" in node):
            return resolver.evaluate(node)
        return {k: render_tree(resolver, v) for k, v in node.items()}
    if isinstance(node, list):
        return [render_tree(resolver, v) for v in node]
    return node


def rendered_policy(cloud: Cloud) -> dict[str, Any]:
    _, key = card_key(cloud.synthesized.template["Resources"])
    policy: dict[str, Any] = render_tree(cloud.resolver(), key["Properties"]["KeyPolicy"])
    return policy


def accepted_images(policy: Mapping[str, Any]) -> set[str]:
    """Every PCR0 an attested Decrypt statement of the policy accepts (lower case)."""
    return {value for grant in decrypt_grants(policy) for value in grant.image_sha384}


def create_key(cloud: Cloud) -> str:
    """The key with the template's key policy, rendered, and its alias; the key's ARN."""
    kms = cloud.client("kms")
    key_id, key = card_key(cloud.synthesized.template["Resources"])
    props = key["Properties"]
    policy = json.dumps(rendered_policy(cloud))
    created = kms.create_key(Policy=policy, Description=props.get("Description", ""))["KeyMetadata"]
    cloud.refs[key_id] = created["KeyId"]
    cloud.attributes[(key_id, "Arn")] = created["Arn"]
    cloud.attributes[(key_id, "KeyId")] = created["KeyId"]
    for alias_id in cloud.synthesized.resources("AWS::KMS::Alias"):
        alias = cloud.synthesized.properties(alias_id)
        kms.create_alias(
            AliasName=cloud.resolver().text(alias["AliasName"]),
            TargetKeyId=cloud.resolver().text(alias["TargetKeyId"]),
        )
    return str(created["Arn"])


def update_key_policy(cloud: Cloud) -> dict[str, Any]:
    """PutKeyPolicy with the template's policy re-rendered (the stack update's step); back: that policy."""
    policy = rendered_policy(cloud)
    put_key_policy(cloud, policy, cloud.client("kms"))
    return policy


def put_key_policy(cloud: Cloud, policy: dict[str, Any], kms: Any) -> None:
    """PutKeyPolicy on the stack's key with `kms`, a client made by the caller (threads share none)."""
    key_id, _ = card_key(cloud.synthesized.template["Resources"])
    kms.put_key_policy(KeyId=cloud.refs[key_id], PolicyName="default", Policy=json.dumps(policy))


def key_arn(cloud: Cloud) -> str:
    key_id, _ = card_key(cloud.synthesized.template["Resources"])
    return cloud.attributes[(key_id, "Arn")]


def current_policy(cloud: Cloud) -> dict[str, Any]:
    key_id, _ = card_key(cloud.synthesized.template["Resources"])
    text = cloud.client("kms").get_key_policy(KeyId=cloud.refs[key_id], PolicyName="default")["Policy"]
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def decides(policy: Mapping[str, Any], key_arn: str, pcr0: str) -> bool:
    """Would KMS let the instance role Decrypt, attested as an enclave with this PCR0, under the encryption
    context the policy asks for? (The evaluator the emulator uses, asked directly, for an image no host runs
    any more.)"""
    context = {IMAGE_SHA384: pcr0, **required_context(policy)}
    request = evaluator.Request(
        caller=principals.INSTANCE_ROLE.caller,
        action="kms:Decrypt",
        resource=key_arn,
        context=context,
    )
    return evaluator.evaluate(policy, request).allowed


def required_context(policy: Mapping[str, Any]) -> dict[str, str]:
    """The `kms:EncryptionContext:*` values the policy's statements require (StringEquals)."""
    found: dict[str, str] = {}
    for statement in policy.get("Statement", []):
        for key, value in statement.get("Condition", {}).get("StringEquals", {}).items():
            if key.startswith(ENCRYPTION_CONTEXT_PREFIX) and isinstance(value, str):
                found[key] = value
    return found

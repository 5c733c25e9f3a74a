"""Network and enclave host: the properties that matter for security and for the enclave to run."""

from __future__ import annotations

from typing import Any

from tests.infra.cfn import Json, evaluate, only, resources
from tests.infra.conftest import Synth, SynthFn


def test_own_vpc_with_public_subnets_and_no_nat(default: Synth) -> None:
    t = default.assertions
    t.resource_count_is("AWS::EC2::VPC", 1)
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    for subnet in resources(default.template, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is True


def test_flow_logs_on_with_bounded_retention(default: Synth) -> None:
    default.assertions.has_resource_properties(
        "AWS::EC2::FlowLog", {"ResourceType": "VPC", "TrafficType": "ALL"}
    )
    default.assertions.has_resource(
        "AWS::Logs::LogGroup", {"Properties": {"RetentionInDays": 7}, "DeletionPolicy": "Delete"}
    )


def test_security_group_has_no_inbound_rule(template: Json) -> None:
    assert not resources(template, "AWS::EC2::SecurityGroupIngress")
    for group in resources(template, "AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]
        for rule in group["Properties"]["SecurityGroupEgress"]:
            assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)


def test_instance_has_enclaves_imdsv2_and_no_key_pair(template: Json) -> None:
    _, instance = only(template, "AWS::EC2::Instance")
    props = instance["Properties"]
    assert props["EnclaveOptions"] == {"Enabled": True}
    assert props["MetadataOptions"]["HttpTokens"] == "required"
    assert "KeyName" not in props
    assert props["InstanceType"] == "c5.xlarge"
    assert props["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True


def test_root_volume_is_encrypted_gp3_of_at_least_30_gib(template: Json) -> None:
    _, instance = only(template, "AWS::EC2::Instance")
    (root,) = instance["Properties"]["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/xvda"
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeType"] == "gp3"
    assert root["Ebs"]["VolumeSize"] >= 30


def test_amazon_linux_2023_resolved_at_launch(default: Synth, synth: SynthFn) -> None:
    _, x86 = only(default.template, "AWS::EC2::Instance")
    _, arm = only(synth({"instance_type": "c6g.xlarge"}).template, "AWS::EC2::Instance")
    assert (
        x86["Properties"]["ImageId"]
        == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    assert arm["Properties"]["ImageId"].endswith("al2023-ami-kernel-default-arm64")


def instance_role(template: Json) -> tuple[str, Json]:
    _, profile = only(template, "AWS::IAM::InstanceProfile")
    (ref,) = profile["Properties"]["Roles"]
    role_id = ref["Ref"]
    return role_id, template["Resources"][role_id]


def test_instance_role_is_ec2_and_ssm_managed_only(template: Json) -> None:
    _, role = instance_role(template)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    managed = [evaluate(arn) for arn in role["Properties"]["ManagedPolicyArns"]]
    assert managed == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]


def test_deploy_waits_for_the_boot_signal(template: Json) -> None:
    instance_id, instance = only(template, "AWS::EC2::Instance")
    wait_id, wait = only(template, "AWS::CloudFormation::WaitCondition")
    handle_id, _ = only(template, "AWS::CloudFormation::WaitConditionHandle")
    assert instance_id in wait["DependsOn"]
    assert wait["Properties"]["Handle"] == {"Ref": handle_id}
    assert wait["Properties"]["Count"] == 1
    assert int(wait["Properties"]["Timeout"]) == 45 * 60
    assert f"ref-{handle_id}" in evaluate(instance["Properties"]["UserData"])
    assert wait_id.startswith("EnclaveHostBootComplete")


def test_user_data_sets_up_allocator_proxy_and_hands_over_to_bootstrap(template: Json) -> None:
    _, instance = only(template, "AWS::EC2::Instance")
    user_data = evaluate(instance["Properties"]["UserData"])
    assert "readonly CONF_DIR=/etc/nitro-enclave-demo" in user_data
    assert 'cat >"$CONF_DIR/allocator.yaml"' in user_data
    assert "<<'END_OF_ALLOCATOR_YAML'\n---\n" in user_data
    assert "memory_mib: 3072\ncpu_count: 2" in user_data
    assert "{address: kms.us-east-1.amazonaws.com, port: 443}" in user_data
    assert "infra/constructs/host/bootstrap.sh" in user_data


def role_grants(template: Json) -> dict[str, tuple[set[str], list[Any]]]:
    role_id, _ = instance_role(template)
    grants: dict[str, tuple[set[str], list[Any]]] = {}
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources_ = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            grants[statement["Sid"]] = (set(actions), resources_)
    return grants


def test_role_has_exactly_the_relay_and_producer_queue_permissions(template: Json) -> None:
    def arn(construct: str) -> dict[str, list[str]]:
        (queue_id,) = [k for k in resources(template, "AWS::SQS::Queue") if k.startswith(construct)]
        return {"Fn::GetAtt": [queue_id, "Arn"]}

    grants = role_grants(template)
    receive = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    assert grants["RelayReadsCards"] == (
        receive | {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
        [arn("QueuesCards")],
    )
    assert grants["ProducerSendsCards"] == ({"sqs:SendMessage"}, [arn("QueuesCards")])
    assert grants["ProducerReadsResults"] == (receive, [arn("QueuesResults")])
    sends, targets = grants["RelayPublishesResultsAndDeadLetters"]
    assert "sqs:SendMessage" in sends
    assert targets == [arn("QueuesResults"), arn("QueuesDeadLetter")]
    assert not any("*" in action for actions, _ in grants.values() for action in actions)


def test_code_asset_carries_the_programs_and_host_files_only(default: Synth) -> None:
    (asset,) = [p for p in default.outdir.iterdir() if p.name.startswith("asset.") and p.is_dir()]
    top = {p.name for p in asset.iterdir()}
    assert {"app", "infra", "pyproject.toml"} <= top
    assert not top & {"tests", "docs", ".venv", "node_modules", "cdk.out", ".git", "Makefile", "cdk.json"}
    assert (asset / "infra/constructs/host/bootstrap.sh").is_file()
    assert (asset / "app/enclave/Dockerfile").is_file()
    assert not list(asset.rglob("__pycache__"))

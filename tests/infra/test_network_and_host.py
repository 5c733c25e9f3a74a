"""Network and enclave host: the properties that matter for security and for the enclave to run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.constants import HOST_FILES_DIR
from tests.infra.cfn import Json, allows, card_key, evaluate, only, resources, statements
from tests.infra.conftest import Synth, SynthFn
from tests.infra.test_code_asset import code_asset_dir
from tests.infra.test_host_files import env_file, user_data_parts


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


GROUP_TYPE = "AWS::AutoScaling::AutoScalingGroup"


def launch_data(template: Json) -> Json:
    _, launch_template = only(template, "AWS::EC2::LaunchTemplate")
    data: Json = launch_template["Properties"]["LaunchTemplateData"]
    return data


def test_no_single_instance_only_the_group(template: Json) -> None:
    assert not resources(template, "AWS::EC2::Instance")
    only(template, GROUP_TYPE)


def test_hosts_have_enclaves_imdsv2_with_hop_limit_1_and_no_key_pair(template: Json) -> None:
    data = launch_data(template)
    assert data["EnclaveOptions"] == {"Enabled": True}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert "KeyName" not in data
    assert data["InstanceType"] == "c5.xlarge"
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True


def test_root_volume_is_encrypted_gp3_of_at_least_30_gib(template: Json) -> None:
    (root,) = launch_data(template)["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/xvda"
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeType"] == "gp3"
    assert root["Ebs"]["VolumeSize"] >= 30


def test_amazon_linux_2023_resolved_at_launch(default: Synth) -> None:
    # x86_64 only: an arm64 (Graviton) instance type is refused at synth (tests/infra/test_settings.py).
    x86 = launch_data(default.template)
    assert (
        x86["ImageId"] == "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )


def test_the_group_runs_the_launch_templates_latest_version(template: Json) -> None:
    template_id, _ = only(template, "AWS::EC2::LaunchTemplate")
    _, group = only(template, GROUP_TYPE)
    assert group["Properties"]["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": template_id},
        "Version": {"Fn::GetAtt": [template_id, "LatestVersionNumber"]},
    }


@pytest.mark.parametrize("hosts", [1, 3])
def test_the_group_has_hosts_hosts_and_the_deploy_waits_for_each_signal(hosts: int, synth: SynthFn) -> None:
    _, group = only(synth({} if hosts == 1 else {"hosts": str(hosts)}).template, GROUP_TYPE)
    props = group["Properties"]
    assert (int(props["MinSize"]), int(props["DesiredCapacity"])) == (hosts, hosts)
    # One spare above `hosts`: a roll launches the new host before it terminates an old one.
    assert int(props["MaxSize"]) == hosts + 1
    assert group["CreationPolicy"] == {"ResourceSignal": {"Count": hosts, "Timeout": "PT45M"}}


def test_a_roll_replaces_one_host_at_a_time_waiting_on_its_signal(synth: SynthFn) -> None:
    for hosts in (1, 3):
        _, group = only(synth({} if hosts == 1 else {"hosts": str(hosts)}).template, GROUP_TYPE)
        rolling = group["UpdatePolicy"]["AutoScalingRollingUpdate"]
        assert rolling["MaxBatchSize"] == 1
        assert rolling["WaitOnResourceSignals"] is True
        assert rolling["PauseTime"] == "PT45M"
        # Every host keeps serving the cards queue while its replacement boots (CloudFormation requires
        # MinInstancesInService < MaxSize).
        assert rolling["MinInstancesInService"] == hosts < int(group["Properties"]["MaxSize"])


def test_the_longest_accepted_boot_timeout_is_a_pause_of_one_hour(synth: SynthFn) -> None:
    # PauseTime's documented maximum is PT1H; the creation policy's Timeout (at most 12 hours) follows the
    # same setting. 61 minutes is refused at synth (tests/infra/test_settings.py).
    _, group = only(synth({"boot_timeout_minutes": "60"}).template, GROUP_TYPE)
    assert group["UpdatePolicy"]["AutoScalingRollingUpdate"]["PauseTime"] == "PT1H"
    assert group["CreationPolicy"]["ResourceSignal"]["Timeout"] == "PT1H"


def test_the_group_is_deleted_before_the_gateway_attachment_and_the_routes(template: Json) -> None:
    # aws/aws-cdk#26716: a gateway detached while a host still holds a public address fails the delete
    # (DependencyViolation). DependsOn orders deletion in reverse: hosts first, then routes and gateway.
    _, group = only(template, GROUP_TYPE)
    depends_on = set(group.get("DependsOn", []))
    attachment, _ = only(template, "AWS::EC2::VPCGatewayAttachment")
    routes = {
        route_id
        for route_id, route in resources(template, "AWS::EC2::Route").items()
        if "GatewayId" in route["Properties"]
    }
    assert routes, "no route through the internet gateway"
    assert {attachment, *routes} <= depends_on, sorted(depends_on)


def test_no_host_boots_before_the_key_exists(template: Json) -> None:
    # The canary encrypts and decrypts with the key, by its ARN (demo.env's KMS_KEY_ID): the group waits.
    key_id, _ = card_key(template)
    _, group = only(template, GROUP_TYPE)
    assert key_id in set(group["DependsOn"])


def test_the_hosts_name_the_key_by_its_arn_never_the_alias(template: Json) -> None:
    # KMS_KEY_ID is Fn::GetAtt <card key>.Arn; an alias could be redirected with kms:UpdateAlias.
    key_id, _ = card_key(template)
    _, launch_template = only(template, "AWS::EC2::LaunchTemplate")
    _, variables = launch_template["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    body, demo_env_variables = variables["DemoEnv"]["Fn::Sub"]
    assert "KMS_KEY_ID=${KeyArn}" in body.splitlines()
    assert demo_env_variables["KeyArn"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert "KeyAlias" not in demo_env_variables


def test_hosts_signal_the_group_by_its_logical_id(template: Json, tmp_path: Path) -> None:
    group_id, _ = only(template, GROUP_TYPE)
    env = env_file(template, tmp_path)
    assert env["SIGNAL_RESOURCE"] == group_id
    assert env["STACK_NAME"] == "NitroEnclaveDemo"


def instance_role(template: Json) -> tuple[str, Json]:
    """The hosts' role (the launch template's instance profile's)."""
    _, profile = only(template, "AWS::IAM::InstanceProfile")
    (ref,) = profile["Properties"]["Roles"]
    role_id = ref["Ref"]
    return role_id, template["Resources"][role_id]


def test_instance_role_is_ec2_with_no_managed_policy(template: Json) -> None:
    # AmazonSSMManagedInstanceCore would grant ssm:GetParameter(s) and ssm:GetDocument on every resource.
    _, role = instance_role(template)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_the_ssm_agent_gets_session_manager_and_run_command_only(template: Json) -> None:
    (agent,) = [s for s in role_statements(template) if s.get("Sid") == "SsmAgentSessionsAndCommands"]
    assert set(agent["Action"]) == {
        "ssm:UpdateInstanceInformation",
        "ssm:ListInstanceAssociations",
        *(f"ssmmessages:{a}Channel" for a in ("CreateControl", "CreateData", "OpenControl", "OpenData")),
        *(
            f"ec2messages:{a}"
            for a in ("AcknowledgeMessage", "DeleteMessage", "FailMessage", "GetEndpoint", "GetMessages")
        ),
        "ec2messages:SendReply",
    }


@pytest.mark.parametrize("action", ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"])
def test_the_role_reads_no_parameter_outside_this_stacks(template: Json, action: str) -> None:
    readers = [s for s in role_statements(template) if _allows(s, action)]
    resources_read = [evaluate(r) for s in readers for r in _as_list(s["Resource"])]
    assert all(
        r.startswith("arn:aws:ssm:us-east-1:123456789012:parameter/nitro-enclave-demo/")
        for r in resources_read
    )
    assert all("*" not in r for r in resources_read), resources_read


@pytest.mark.parametrize(
    "action", ["ssm:GetDocument", "ssm:SendCommand", "ssm:PutParameter", "ssm:StartSession"]
)
def test_the_role_cannot_read_documents_or_drive_other_instances(template: Json, action: str) -> None:
    assert not [s for s in role_statements(template) if _allows(s, action)]


def role_statements(template: Json) -> list[Json]:
    """Every statement of every IAM policy attached to the hosts' role."""
    role_id, _ = instance_role(template)
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allows(statement: Json, action: str) -> bool:
    import fnmatch  # noqa: PLC0415

    return statement["Effect"] == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), str(pattern).lower()) for pattern in _as_list(statement["Action"])
    )


def test_user_data_sets_up_allocator_proxy_and_hands_over_to_bootstrap(template: Json) -> None:
    user_data = user_data_parts(template)["user-data.sh"]
    assert "readonly CONF_DIR=/etc/nitro-enclave-demo" in user_data
    assert 'cat >"$CONF_DIR/allocator.yaml"' in user_data
    assert "<<'END_OF_ALLOCATOR_YAML'\n---\n" in user_data
    assert "memory_mib: 3072\ncpu_count: 2" in user_data
    assert "{address: kms.us-east-1.amazonaws.com, port: 443}" in user_data
    assert "infra/constructs/host/bootstrap.sh" in user_data


HOST_SCRIPTS_AND_UNITS = (
    "bootstrap.sh",
    "enclave-run.sh",
    "nitro-demo.sh",
    "nitro-enclave-demo-enclave.service",
    "nitro-enclave-demo-relay.service",
    "nitro-enclave-demo-logs.service",
    "nitro-enclave-demo-journal@.service",
    "vsock-proxy.override.conf",
)
DOCKER_MASK = "systemctl mask --now docker.service docker.socket"


def test_nothing_on_a_host_builds_an_image_or_signals_a_measurement(template: Json) -> None:
    boot = user_data_parts(template)["user-data.sh"] + (HOST_FILES_DIR / "bootstrap.sh").read_text()
    for word in ("build-enclave", "WaitCondition", "SIGNAL_URL", "Data"):
        assert word not in boot, word
    assert "aws cloudformation signal-resource" in boot


def test_docker_comes_with_the_nitro_cli_but_nothing_on_a_host_runs_it(template: Json) -> None:
    # The Nitro CLI RPM declares `Requires: docker` (SPECS/aws-nitro-enclaves-cli.spec), so its package is
    # installed. The one command line naming docker masks its daemon and socket; no unit orders after,
    # wants or requires it, and no script runs docker (tests/infra/test_bootstrap_run.py checks the run).
    texts = {"user-data.sh": user_data_parts(template)["user-data.sh"]}
    texts |= {name: (HOST_FILES_DIR / name).read_text() for name in HOST_SCRIPTS_AND_UNITS}
    commands = [
        (name, line.strip())
        for name, text in texts.items()
        for line in text.splitlines()
        if "docker" in line.lower() and not line.lstrip().startswith(("#", "step ", "log "))
    ]
    assert commands == [("bootstrap.sh", DOCKER_MASK)]


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
            # CDK's own grant for the group's signals carries no Sid: key it by its action.
            grants[statement.get("Sid") or "+".join(actions)] = (set(actions), resources_)
    return grants


def test_the_role_reads_the_pinned_eif_object_only(template: Json) -> None:
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    bucket_id, _ = only(template, "AWS::S3::Bucket")
    actions, targets = role_grants(template)["FetchPinnedEif"]
    # GetObject with a versionId needs s3:GetObjectVersion and not s3:GetObject (S3 API reference,
    # GetObject); s3:versionid (service authorization reference) limits it to the build's one version.
    assert actions == {"s3:GetObjectVersion"}
    eif = {"Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/", {"Fn::GetAtt": [build_id, "EifKey"]}]]}
    assert targets == [eif]
    (statement,) = [s for s in statements(template) if s.sid == "FetchPinnedEif"]
    assert statement.condition == {"StringEquals": {"s3:versionid": {"Fn::GetAtt": [build_id, "EifVersion"]}}}
    reads = [(sid, r) for sid, (a, r) in role_grants(template).items() if any(x.startswith("s3:") for x in a)]
    assert sorted(sid for sid, _ in reads) == ["FetchHostBundle", "FetchPinnedEif"]
    assert "*" not in str(reads)


def test_the_role_reads_the_builds_host_bundle_version_only_and_no_code_asset(template: Json) -> None:
    build_id, _ = only(template, "Custom::EnclaveImageBuild")
    bucket_id, _ = only(template, "AWS::S3::Bucket")
    actions, targets = role_grants(template)["FetchHostBundle"]
    assert actions == {"s3:GetObjectVersion"}
    bundle = {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/", {"Fn::GetAtt": [build_id, "BundleKey"]}]]
    }
    assert targets == [bundle]
    (statement,) = [s for s in statements(template) if s.sid == "FetchHostBundle"]
    assert statement.condition == {
        "StringEquals": {"s3:versionid": {"Fn::GetAtt": [build_id, "BundleVersion"]}}
    }
    # The CDK assets bucket (its name is a Fn::Sub of cdk-hnb659fds-assets-...) is nowhere in the host's role.
    assert "assets" not in json.dumps([r for _, (_, r) in role_grants(template).items()])


def test_the_role_signals_this_stack_only(template: Json) -> None:
    signals = [s for s in statements(template) if allows(s, "cloudformation:SignalResource")]
    assert len(signals) == 1
    (grant,) = [s for s in role_statements(template) if "cloudformation:" in str(s["Action"])]
    assert (grant["Action"], grant["Resource"]) == ("cloudformation:SignalResource", {"Ref": "AWS::StackId"})
    assert not any(
        a.startswith("cloudformation:")
        for s in statements(template)
        for a in s.actions
        if a != "cloudformation:SignalResource"
    )


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
    asset = code_asset_dir(default.outdir)
    top = {p.name for p in asset.iterdir()}
    assert {"app", "infra", "pyproject.toml"} <= top
    assert not top & {"tests", "docs", ".venv", "node_modules", "cdk.out", ".git", "Makefile", "cdk.json"}
    assert (asset / "infra/constructs/host/bootstrap.sh").is_file()
    assert (asset / "app/enclave/Dockerfile").is_file()  # CodeBuild builds the EIF from the same asset
    assert not list(asset.rglob("__pycache__"))

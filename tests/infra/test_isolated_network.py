"""`-c network=isolated`: hosts with no public address and no route to the internet, reaching exactly the APIs
of infra/constructs/endpoints.py through VPC endpoints; the default (public) network is unchanged."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from infra.constructs import endpoints
from tests.infra.cfn import Json, evaluate, only, resources
from tests.infra.conftest import Synth, SynthFn
from tests.infra.test_checks import CFN_LINT
from tests.infra.test_network_and_host import GROUP_TYPE, launch_data

ENDPOINT_TYPE = "AWS::EC2::VPCEndpoint"


def _service(endpoint: Json) -> str:
    name = evaluate(endpoint["Properties"]["ServiceName"])
    assert isinstance(name, str)
    assert name.startswith("com.amazonaws.us-east-1."), name
    return name.removeprefix("com.amazonaws.us-east-1.")


def _host_route_tables(template: Json) -> set[str]:
    _, group = only(template, GROUP_TYPE)
    subnets = {ref["Ref"] for ref in group["Properties"]["VPCZoneIdentifier"]}
    return {
        association["Properties"]["RouteTableId"]["Ref"]
        for association in resources(template, "AWS::EC2::SubnetRouteTableAssociation").values()
        if association["Properties"]["SubnetId"]["Ref"] in subnets
    }


def test_the_default_network_stays_public(default: Synth) -> None:
    template = default.template
    assert not resources(template, ENDPOINT_TYPE)
    assert not resources(template, "Custom::AWS")
    assert "isolated-pip-needs-pypi" not in (default.outdir / "NitroEnclaveDemo.metadata.json").read_text()
    assert launch_data(template)["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    only(template, "AWS::EC2::InternetGateway")


def test_isolated_hosts_get_no_public_address(isolated: Synth) -> None:
    (interface,) = launch_data(isolated.template)["NetworkInterfaces"]
    assert interface["AssociatePublicIpAddress"] is False
    for subnet in resources(isolated.template, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


def test_isolated_hosts_have_no_route_to_the_internet(isolated: Synth) -> None:
    t = isolated.template
    for kind in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EgressOnlyInternetGateway"):
        assert not resources(t, kind), kind
    tables = _host_route_tables(t)
    assert tables
    assert not [
        route
        for route in resources(t, "AWS::EC2::Route").values()
        if route["Properties"]["RouteTableId"]["Ref"] in tables
    ], "a host subnet has a route of its own (only the gateway endpoint's prefix-list route is expected)"


def test_isolated_network_has_an_interface_endpoint_per_api_a_host_calls(isolated: Synth) -> None:
    found = resources(isolated.template, ENDPOINT_TYPE).values()
    interface = {_service(e): e for e in found if e["Properties"]["VpcEndpointType"] == "Interface"}
    assert set(interface) == set(endpoints.INTERFACE_ENDPOINTS)
    for endpoint in interface.values():
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
    # The enclave's vsock-proxy dials kms.<region>.amazonaws.com: private DNS makes that the endpoint.
    assert "kms" in interface


def test_the_s3_gateway_endpoint_serves_the_host_subnets(isolated: Synth) -> None:
    t = isolated.template
    (gateway,) = [
        e for e in resources(t, ENDPOINT_TYPE).values() if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    assert _service(gateway) == "s3"
    assert {ref["Ref"] for ref in gateway["Properties"]["RouteTableIds"]} == _host_route_tables(t)


def _gateway_policy(template: Json) -> list[Json]:
    (gateway,) = [
        e
        for e in resources(template, ENDPOINT_TYPE).values()
        if e["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    statements: list[Json] = gateway["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_the_s3_gateway_admits_reads_of_the_repositories_and_the_builds_artifacts_only(
    isolated: Synth,
) -> None:
    policy = _gateway_policy(isolated.template)
    by_sid = {s["Sid"]: s for s in policy}
    assert set(by_sid) == {"AmazonLinuxRepositories", "ProjectCode", "BuildArtifacts"}
    assert (
        evaluate(by_sid["AmazonLinuxRepositories"]["Resource"])
        == "arn:aws:s3:::al2023-repos-us-east-1-de612dc2/*"
    )
    bucket_id, _ = only(isolated.template, "AWS::S3::Bucket")
    assert bucket_id in str(by_sid["BuildArtifacts"]["Resource"])
    for statement in policy:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert set(actions) <= {"s3:GetObject", "s3:GetObjectVersion"}, statement


def test_account_scoped_endpoints_admit_this_account_only(isolated: Synth) -> None:
    for endpoint in resources(isolated.template, ENDPOINT_TYPE).values():
        if endpoint["Properties"]["VpcEndpointType"] != "Interface":
            continue
        name = _service(endpoint)
        if name not in endpoints.ACCOUNT_SCOPED_ENDPOINTS:
            assert "PolicyDocument" not in endpoint["Properties"], name
            continue
        statements = endpoint["Properties"]["PolicyDocument"]["Statement"]
        (everything,) = [st for st in statements if st["Action"] == "*"]
        assert everything["Condition"]["StringEquals"] == {
            "aws:PrincipalAccount": {"Ref": "AWS::AccountId"},
            "aws:ResourceAccount": {"Ref": "AWS::AccountId"},
        }, name
        # The one exception: ssm reads of AWS-owned documents and public parameters, by this account only.
        others = [st for st in statements if st is not everything]
        assert len(others) == (1 if name == "ssm" else 0), name
        for other in others:
            assert set(other["Action"]) == {"ssm:Describe*", "ssm:List*", "ssm:Get*"}
            assert other["Condition"] == {"StringEquals": {"aws:PrincipalAccount": {"Ref": "AWS::AccountId"}}}
            assert [evaluate(r) for r in other["Resource"]] == [
                "arn:aws:ssm:us-east-1::document/*",
                "arn:aws:ssm:us-east-1::parameter/aws/*",
            ]


def _groups(template: Json) -> tuple[str, str]:
    """(the hosts' security group, the endpoints' security group) logical ids."""
    template_groups = launch_data(template)["NetworkInterfaces"][0]["Groups"]
    (host,) = [g["Fn::GetAtt"][0] for g in template_groups]
    endpoint_groups = {
        g["Fn::GetAtt"][0]
        for e in resources(template, ENDPOINT_TYPE).values()
        for g in e["Properties"].get("SecurityGroupIds", [])
    }
    (endpoint,) = endpoint_groups
    return host, endpoint


def _rules(template: Json, group_id: str, kind: str) -> list[Json]:
    inline = template["Resources"][group_id]["Properties"].get(f"SecurityGroup{kind}", [])
    separate = [
        r["Properties"]
        for r in resources(template, f"AWS::EC2::SecurityGroup{kind}").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    return [*inline, *separate]


def _is_cdk_placeholder(rule: Json) -> bool:
    # CDK's "disallow all traffic" egress rule for a group with no outbound rule: ICMP type 252 to
    # 255.255.255.255/32, which matches nothing.
    return rule.get("CidrIp") == "255.255.255.255/32" and rule["IpProtocol"] == "icmp"


def test_only_the_hosts_reach_the_endpoints_on_443(isolated: Synth) -> None:
    t = isolated.template
    host, endpoint = _groups(t)
    (ingress,) = _rules(t, endpoint, "Ingress")
    assert (ingress["IpProtocol"], ingress["FromPort"], ingress["ToPort"]) == ("tcp", 443, 443)
    assert ingress["SourceSecurityGroupId"] == {"Fn::GetAtt": [host, "GroupId"]}
    assert all(_is_cdk_placeholder(rule) for rule in _rules(t, endpoint, "Egress"))


def test_isolated_hosts_send_only_to_the_endpoints_and_the_s3_prefix_list(isolated: Synth) -> None:
    t = isolated.template
    host, endpoint = _groups(t)
    assert not _rules(t, host, "Ingress")
    egress = _rules(t, host, "Egress")
    assert all((r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", 443, 443) for r in egress)
    destinations: list[Any] = [
        r.get("DestinationSecurityGroupId") or r.get("DestinationPrefixListId") for r in egress
    ]
    assert not [r for r in egress if "CidrIp" in r or "CidrIpv6" in r]
    assert {"Fn::GetAtt": [endpoint, "GroupId"]} in destinations
    (prefix_list,) = [d for d in destinations if "Fn::GetAtt" in d and d["Fn::GetAtt"][0] != endpoint]
    (lookup,) = [
        k
        for k, r in t["Resources"].items()
        if r["Type"] == "Custom::AWS" and k == prefix_list["Fn::GetAtt"][0]
    ]
    assert "describeManagedPrefixLists" in str(t["Resources"][lookup]["Properties"]["Create"])


def test_no_host_boots_before_the_endpoints_exist(isolated: Synth) -> None:
    _, group = only(isolated.template, GROUP_TYPE)
    assert set(resources(isolated.template, ENDPOINT_TYPE)) <= set(group["DependsOn"])


@pytest.mark.parametrize("value", ["private", "ISOLATED-ish", ""])
def test_an_unknown_network_mode_is_refused(value: str, synth: SynthFn) -> None:
    from infra.settings import SettingsError  # noqa: PLC0415

    with pytest.raises(SettingsError, match="network must be one of"):
        synth({"network": value})


def test_isolated_synth_passes_cdk_nag_and_cfn_lint(isolated: Synth) -> None:
    import json  # noqa: PLC0415

    report = json.loads((isolated.outdir / "validation-report.json").read_text())
    for plugin in report["pluginReports"]:
        assert plugin["violations"] == [], (plugin["pluginName"], plugin["violations"])
    result = subprocess.run(
        [str(CFN_LINT), "--ignore-checks", "W3005", "--", str(isolated.json_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_isolated_synth_warns_that_the_hosts_pip_install_still_needs_pypi(isolated: Synth) -> None:
    # Until the build's host bundle carries the wheels, bootstrap.sh's `pip install` cannot work there.
    from infra.constants import HOST_FILES_DIR  # noqa: PLC0415
    from infra.constructs.network import PIP_NEEDS_PYPI  # noqa: PLC0415

    bootstrap = (HOST_FILES_DIR / "bootstrap.sh").read_text()
    assert '-m pip install -q "$SRC_DIR"' in bootstrap
    assert "--no-index" not in bootstrap
    metadata = (isolated.outdir / "NitroEnclaveDemo.metadata.json").read_text()
    assert PIP_NEEDS_PYPI[:60] in metadata

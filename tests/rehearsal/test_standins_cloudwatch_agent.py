"""amazon-cloudwatch-agent-ctl stand-in: fetch-config validates the stack's config, refuses a broken one."""

from __future__ import annotations

from pathlib import Path

from infra.constructs import host_logs
from tests.rehearsal.standin_helpers import install_packages, make_root, run

CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
CONFIG = host_logs.agent_config_json()


def agent_root(tmp_path: Path, text: str) -> Path:
    root = make_root(tmp_path)
    install_packages(root, "amazon-cloudwatch-agent")
    (root / "etc/agent.json").write_text(text)
    return root


def test_the_stacks_config_is_fetched(tmp_path: Path) -> None:
    root = agent_root(tmp_path, CONFIG.replace("${LogGroupName}", "/nitro-enclave-demo/host"))
    done = run(root, CTL, "-a", "fetch-config", "-m", "ec2", "-s", "-c", "file:/etc/agent.json")
    assert done.returncode == 0, done.stderr
    assert (root / "opt/aws/amazon-cloudwatch-agent/etc/amazon-cloudwatch-agent.d/file_agent.json").exists()


def test_a_config_that_is_not_json_is_refused(tmp_path: Path) -> None:
    root = agent_root(tmp_path, '{"logs": ')
    done = run(root, CTL, "-a", "fetch-config", "-m", "ec2", "-s", "-c", "file:/etc/agent.json")
    assert done.returncode == 1
    assert "Invalid JSON" in done.stderr


def test_a_collected_file_without_a_path_is_refused(tmp_path: Path) -> None:
    text = '{"logs": {"logs_collected": {"files": {"collect_list": [{"log_group_name": "g"}]}}}}'
    done = run(
        agent_root(tmp_path, text), CTL, "-a", "fetch-config", "-m", "ec2", "-c", "file:/etc/agent.json"
    )
    assert done.returncode == 1
    assert "collect_list[0] has no file_path" in done.stderr

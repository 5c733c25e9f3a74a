"""dnf stand-in: the bootstrap's AL2023 package names install their stand-ins; any other name is refused."""

from __future__ import annotations

import re
from pathlib import Path

from tests.rehearsal.standin_helpers import (
    BOOTSTRAP_PACKAGES,
    BUILDSPEC_PACKAGES,
    REPO_ROOT,
    install_packages,
    make_root,
    run,
)

BOOTSTRAP = REPO_ROOT / "infra/constructs/host/bootstrap.sh"
BUILDSPEC = REPO_ROOT / "infra/build/buildspec.yml"


def test_the_lists_here_are_the_ones_bootstrap_and_the_buildspec_install() -> None:
    command = re.search(r"dnf install -y -q (.*?)\n(?!\s)", BOOTSTRAP.read_text(), re.S)
    assert command is not None
    assert tuple(command[1].replace("\\", " ").split()) == BOOTSTRAP_PACKAGES
    lines = re.findall(r"dnf install -y (.*?)\n", BUILDSPEC.read_text())
    assert lines  # pinned ("NAME-$NITRO_CLI_VERSION") and not: the same packages
    for line in lines:
        names = line.replace('"', "").replace("-$NITRO_CLI_VERSION", "").split()
        assert tuple(names) == BUILDSPEC_PACKAGES


def test_installing_the_bootstraps_packages_puts_the_stand_ins_in_place(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    install_packages(root, *BOOTSTRAP_PACKAGES)
    programs = [f"usr/bin/{p}" for p in ("nitro-cli", "vsock-proxy", "nitro-enclaves-allocator")]
    for program in [*programs, "opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"]:
        assert (root / program).exists(), program
    assert (root / "usr/bin/docker").exists()  # the Nitro CLI RPM requires Docker; bootstrap.sh masks it
    assert (root / "etc/nitro_enclaves/vsock-proxy.yaml").read_text().startswith("allowlist:")
    assert not (
        root / "usr/share/nitro_enclaves/blobs"
    ).exists()  # the -devel package has them; hosts build nothing
    assert any(line.startswith("ne:x:") for line in (root / "etc/group").read_text().splitlines())


def test_the_units_keep_the_packages_names_and_exec_start(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    install_packages(root, "aws-nitro-enclaves-cli")
    units = root / "usr/lib/systemd/system"
    allocator = (units / "nitro-enclaves-allocator.service").read_text()
    assert "ExecStart=/usr/bin/nitro-enclaves-allocator\n" in allocator
    assert "Type=oneshot" in allocator
    assert "RemainAfterExit=true" in allocator
    proxy = (units / "nitro-enclaves-vsock-proxy.service").read_text()
    assert "exec /usr/bin/vsock-proxy 8000 kms.$${REGION}.amazonaws.com 443" in proxy
    assert "--config /etc/nitro_enclaves/vsock-proxy.yaml" in proxy


def test_an_unknown_name_is_refused_as_dnf_refuses_it_and_nothing_is_installed(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    done = run(root, "/usr/bin/dnf", "install", "-y", "docker", "amazon-linux-extras")
    assert done.returncode == 1
    assert "No match for argument: amazon-linux-extras" in done.stderr
    assert "Error: Unable to find a match: amazon-linux-extras" in done.stderr
    assert not (root / "usr/bin/docker").exists()


def test_without_yes_and_no_terminal_dnf_aborts(tmp_path: Path) -> None:
    done = run(make_root(tmp_path), "/usr/bin/dnf", "install", "jq")
    assert done.returncode == 1
    assert "Operation aborted." in done.stderr


def test_a_package_the_debian_root_must_bring_is_checked_for(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    (root / "usr/bin/jq").unlink()
    done = run(root, "/usr/bin/dnf", "install", "-y", "jq")
    assert done.returncode == 1
    assert "/usr/bin/jq" in done.stderr


def test_the_nitro_cli_package_brings_docker_as_its_spec_requires(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    done = run(root, "/usr/bin/dnf", "install", "-y", "aws-nitro-enclaves-cli")
    assert done.returncode == 0, done.stderr
    assert "  docker\n" in done.stdout
    assert (root / "usr/bin/docker").exists()
    assert (root / "usr/lib/systemd/system/docker.service").exists()


def test_a_pinned_nitro_cli_version_installs_only_if_it_is_the_one_served(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    pinned = run(
        root,
        "/usr/bin/dnf",
        "install",
        "-y",
        "aws-nitro-enclaves-cli-1.5.0",
        "aws-nitro-enclaves-cli-devel-1.5.0",
    )
    assert pinned.returncode == 0, pinned.stderr
    assert run(root, "/usr/bin/nitro-cli", "--version").stdout.strip() == "Nitro CLI 1.5.0"
    other = run(root, "/usr/bin/dnf", "install", "-y", "aws-nitro-enclaves-cli-1.4.2")
    assert other.returncode == 1
    assert "No match for argument: aws-nitro-enclaves-cli-1.4.2" in other.stderr

"""nitro-enclaves-allocator stand-in: the allocator's parse rules (the shared checker), then its pool."""

from __future__ import annotations

import json
from pathlib import Path

from tests.rehearsal.standin_helpers import REPO_ROOT, install_packages, make_root, run

TEMPLATE = REPO_ROOT / "infra/constructs/host/allocator.yaml"


def rendered(memory_mib: int = 3072, cpu_count: int = 2) -> str:
    """allocator.yaml as Fn::Sub renders it from the repo's file."""
    text = TEMPLATE.read_text()
    return text.replace("${EnclaveMemoryMib}", str(memory_mib)).replace("${EnclaveCpuCount}", str(cpu_count))


def allocator_root(tmp_path: Path, text: str, *, device: bool = True) -> Path:
    root = make_root(tmp_path)
    install_packages(root, "aws-nitro-enclaves-cli")
    (root / "etc/nitro_enclaves/allocator.yaml").write_text(text)
    if device:
        (root / "dev/nitro_enclaves").touch()
    return root


def test_the_pre_fix_heredoc_blank_line_is_refused_with_the_allocators_message(tmp_path: Path) -> None:
    pre_fix = rendered() + "\n"  # the file's own final newline plus the heredoc's: blocker 1
    root = allocator_root(tmp_path, pre_fix)
    done = run(root, "/usr/bin/nitro-enclaves-allocator")
    line = len(pre_fix.splitlines())
    assert done.returncode == 1
    assert f"Error: Error in /etc/nitro_enclaves/allocator.yaml:{line} - unexpected: " in done.stdout
    assert not (root / "run/nitro_enclaves/rehearsal-pool.json").exists()


def test_the_rendered_file_reserves_whole_cores_away_from_cpu_0(tmp_path: Path) -> None:
    root = allocator_root(tmp_path, rendered())
    done = run(root, "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 0, done.stdout
    assert "Successfully allocated Nitro Enclaves resources: 3072 MiB, 2 CPUs" in done.stdout
    pool = json.loads((root / "run/nitro_enclaves/rehearsal-pool.json").read_text())
    assert pool == {"memory_mib": 3072, "cpu_ids": [1, 3]}


def test_memory_the_instance_cannot_give_is_refused(tmp_path: Path) -> None:
    done = run(allocator_root(tmp_path, rendered(memory_mib=8000)), "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 1
    assert "insufficient system resources" in done.stdout


def test_an_odd_cpu_count_is_refused(tmp_path: Path) -> None:
    done = run(allocator_root(tmp_path, rendered(cpu_count=3)), "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 1
    assert "The CPU count is not multiple of 2 (threads per core)." in done.stdout


def test_all_cpus_leave_none_for_the_parent_and_are_refused(tmp_path: Path) -> None:
    done = run(allocator_root(tmp_path, rendered(cpu_count=4)), "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 1
    assert "Failed to find suitable CPUs" in done.stdout


def test_without_the_enclave_device_the_driver_is_missing(tmp_path: Path) -> None:
    done = run(allocator_root(tmp_path, rendered(), device=False), "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 1
    assert "Please make sure the Nitro Enclaves driver is inserted." in done.stdout


def test_a_cpu_pool_with_cpu_0s_core_is_refused(tmp_path: Path) -> None:
    text = "---\nmemory_mib: 1024\ncpu_pool: 0,2\n"
    done = run(allocator_root(tmp_path, text), "/usr/bin/nitro-enclaves-allocator")
    assert done.returncode == 1
    assert "Failed to configure the CPU pool." in done.stdout

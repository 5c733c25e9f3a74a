"""The allocator's parse rules (parse_config, aws-nitro-enclaves-cli bootstrap/nitro-enclaves-allocator)."""

from __future__ import annotations

import pytest

from rehearsal.contracts.allocator_config import (
    AllocatorConfig,
    IncompleteConfig,
    MissingValue,
    UnexpectedLine,
    parse_allocator_config,
    read_lines,
)

GOOD = "---\n# comment\nmemory_mib: 3072\ncpu_count: 2\n"


def test_a_well_formed_file_gives_its_settings() -> None:
    assert parse_allocator_config(GOOD) == AllocatorConfig(memory_mib="3072", cpu_count="2", cpu_pool=None)


def test_a_trailing_blank_line_is_an_unexpected_empty_key() -> None:
    with pytest.raises(UnexpectedLine) as caught:
        parse_allocator_config(GOOD + "\n")
    assert str(caught.value) == "Error in /etc/nitro_enclaves/allocator.yaml:5 - unexpected: "


def test_a_blank_line_before_the_marker_is_skipped() -> None:
    assert parse_allocator_config("\n# header\n\n" + GOOD).memory_mib == "3072"


def test_everything_before_the_marker_is_ignored() -> None:
    assert parse_allocator_config("memory_mib: 1\nnonsense\n" + GOOD).memory_mib == "3072"


def test_without_a_marker_nothing_is_read() -> None:
    with pytest.raises(IncompleteConfig, match="missing memory reservation"):
        parse_allocator_config("memory_mib: 3072\ncpu_count: 2\n")


def test_an_unknown_key_names_the_key_and_the_line() -> None:
    with pytest.raises(UnexpectedLine) as caught:
        parse_allocator_config("---\nmemory_mib: 3072\ncpus: 2\n", path="/x.yaml")
    assert str(caught.value) == "Error in /x.yaml:3 - unexpected: cpus"


def test_keys_are_lowercase_only() -> None:
    with pytest.raises(UnexpectedLine, match="unexpected: Memory_MiB"):
        parse_allocator_config("---\nMemory_MiB: 3072\n")


def test_an_empty_value_is_missing() -> None:
    with pytest.raises(MissingValue, match=r":2 - missing value for memory_mib$"):
        parse_allocator_config("---\nmemory_mib:\ncpu_count: 2\n")


def test_a_last_line_without_newline_is_never_read() -> None:
    with pytest.raises(IncompleteConfig, match="missing CPU reservation"):
        parse_allocator_config("---\nmemory_mib: 3072\ncpu_count: 2")


def test_cpu_count_and_cpu_pool_conflict() -> None:
    with pytest.raises(IncompleteConfig, match="conflicts"):
        parse_allocator_config("---\nmemory_mib: 3072\ncpu_count: 2\ncpu_pool: 2,3\n")


def test_cpu_pool_alone_is_enough() -> None:
    assert parse_allocator_config("---\nmemory_mib: 512\ncpu_pool: 2,3\n").cpu_pool == "2,3"


def test_indented_lines_quotes_and_a_repeated_marker() -> None:
    parsed = parse_allocator_config('  ---  \n\tmemory_mib:  "3072"\n---\ncpu_count :2\n')
    assert parsed == AllocatorConfig(memory_mib="3072", cpu_count="2", cpu_pool=None)


def test_read_lines_trims_blanks_and_applies_backslashes() -> None:
    assert read_lines(" a \\\nb\\x \n\tc\nd") == ["a bx", "c"]

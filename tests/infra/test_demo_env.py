"""demo.env is data: the host's reader (host/demo-env.sh) against host/demo-env.patterns, the patterns
against the template's demo.env, the build handler's rules and systemd's EnvironmentFile= parser."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.keypolicy.key_arn import KEY_ARN_PATTERN
from infra import settings as infra_settings
from infra.build.handler import enclave_build
from infra.constants import HOST_FILES_DIR
from tests.infra.demo_env import (
    PATTERNS_FILE,
    VALID,
    patterns,
    read_with_bash,
    realistic,
    render,
    systemd_reads_literally,
)
from tests.infra.test_host_files import user_data_parts

MARKER_NAME = "forged-config-ran"


def forged_eif_version(marker: Path) -> str:
    return f"v1$(touch {marker})"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "demo.env"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_patterns_name_exactly_the_keys_of_the_templates_demo_env() -> None:
    template = (HOST_FILES_DIR / "demo.env").read_text(encoding="utf-8")
    keys = [line.split("=", 1)[0] for line in template.splitlines() if line and not line.startswith("#")]
    assert keys == list(patterns())
    assert set(VALID) == set(patterns())


def test_the_rendered_demo_env_is_read_by_the_host_as_written(template: object, tmp_path: Path) -> None:
    text = realistic(user_data_parts(template)["DemoEnv"])  # type: ignore[arg-type]
    result = read_with_bash(write(tmp_path, text))
    assert result.returncode == 0, result.stdout + result.stderr
    exported = dict(line.split("=", 1) for line in result.stdout.splitlines())
    written = dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert {k: exported[k] for k in written} == written


def test_the_encryption_context_is_written_unquoted(template: object) -> None:
    # A quoted value means one thing to bash and another to systemd; none is quoted now.
    text = user_data_parts(template)["DemoEnv"]  # type: ignore[arg-type]
    assert 'ENCRYPTION_CONTEXT={"app":"nitro-enclave-demo"}\n' in text


def test_the_handlers_rules_are_the_hosts_for_the_build_values() -> None:
    rules = patterns()
    assert rules["EXPECTED_PCR0"] == enclave_build.PCR_RE.pattern
    assert rules["EIF_KEY"] == enclave_build.EIF_KEY_RE.pattern
    assert rules["EIF_VERSION"] == enclave_build.EIF_VERSION_RE.pattern
    assert rules["BUNDLE_KEY"] == enclave_build.BUNDLE_KEY_RE.pattern
    assert rules["BUNDLE_VERSION"] == enclave_build.EIF_VERSION_RE.pattern
    assert rules["BUNDLE_SHA256"] == enclave_build.BUNDLE_SHA256_RE.pattern


def test_the_hosts_key_pattern_is_the_programs_key_arn_pattern() -> None:
    # The host refuses at boot exactly what the programs would refuse later: an alias, a bare key id.
    assert patterns()["KMS_KEY_ID"] == KEY_ARN_PATTERN


def test_the_settings_check_the_encryption_context_with_the_hosts_pattern() -> None:
    assert infra_settings.demo_env_pattern("ENCRYPTION_CONTEXT").pattern == patterns()["ENCRYPTION_CONTEXT"]
    default = infra_settings.render_context(infra_settings.DEFAULTS["encryption_context"])
    assert re.fullmatch(patterns()["ENCRYPTION_CONTEXT"], default)


def test_only_the_encryption_context_admits_a_quote_and_never_first() -> None:
    for key, pattern in patterns().items():
        quoted = '"' in pattern.replace('\\"', "")
        assert quoted == (key == "ENCRYPTION_CONTEXT"), key
    assert patterns()["ENCRYPTION_CONTEXT"].startswith("\\{")


@pytest.mark.parametrize("key", list(patterns()))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_admitted_value_means_the_same_to_systemd_and_has_no_shell_syntax(
    key: str, data: st.DataObject
) -> None:
    admitted = st.from_regex(re.compile(patterns()[key]), fullmatch=True)
    value = data.draw(admitted.filter(lambda v: "\n" not in v))
    assert systemd_reads_literally(value), value
    assert not set(value) & set("$`;#' \t\\"), value


@pytest.mark.parametrize("key", list(patterns()))
def test_bash_and_python_agree_on_each_pattern(key: str, tmp_path: Path) -> None:
    # The same text read as POSIX ERE by bash and as a Python re, on admitted and refused samples.
    samples = [VALID[key], VALID[key] + " ", "x" + VALID[key], VALID[key][:-1], "$(id)", "", "'a'"]
    values = tmp_path / "values"
    values.write_text("\n".join(samples) + "\n", encoding="utf-8")
    pattern = patterns()[key]
    # As the reader does: the pattern is expanded from a variable, so its quotes are literal characters.
    script = 'while IFS= read -r v; do if [[ "$v" =~ ^($1)$ ]]; then echo 1; else echo 0; fi; done'
    with values.open() as stdin:
        argv = ["/bin/bash", "-c", script, "bash", pattern]
        result = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=True)
    python = ["1" if re.fullmatch(pattern, v) else "0" for v in samples]
    assert result.stdout.split() == python
    assert python[0] == "1"


def test_a_forged_value_with_a_command_substitution_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / MARKER_NAME
    result = read_with_bash(write(tmp_path, render({**VALID, "EIF_VERSION": forged_eif_version(marker)})))
    assert result.returncode == 1
    assert result.stdout.startswith("EIF_VERSION: ")
    assert "line 17: EIF_VERSION is not of its form" in result.stdout
    assert "touch" not in result.stdout  # the value is never echoed
    assert not marker.exists()


def test_the_old_sourcing_runs_the_same_forged_value(tmp_path: Path) -> None:
    # What bootstrap.sh did before the reader: the forged value's command runs as the sourcing shell.
    marker = tmp_path / MARKER_NAME
    path = write(tmp_path, render({**VALID, "EIF_VERSION": forged_eif_version(marker)}))
    subprocess.run(["/bin/bash", "-c", f'set -a; . "{path}"; set +a'], check=True)
    assert marker.exists()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (render({**VALID, "EXTRA": "1"}), "EXTRA", "unknown key EXTRA"),
        (render(VALID) + "AWS_REGION=us-east-2\n", "AWS_REGION", "AWS_REGION given twice"),
        (render({k: v for k, v in VALID.items() if k != "STACK_NAME"}), "STACK_NAME", "is missing"),
        (render(VALID) + "just words\n", "demo.env", "not KEY=VALUE"),
        (render(VALID) + "A[$(touch x)]=1\n", "demo.env", "not KEY=VALUE"),
        (render({**VALID, "EXPECTED_PCR0": "5E" * 48}), "EXPECTED_PCR0", "EXPECTED_PCR0 is not of its form"),
        (render({**VALID, "ENCRYPTION_CONTEXT": "'{}'"}), "ENCRYPTION_CONTEXT", "is not of its form"),
        (render({**VALID, "ENCLAVE_DEBUG": "false\r"}), "ENCLAVE_DEBUG", "is not of its form"),
        (render({**VALID, "EIF_KEY": "eif/../x.eif"}), "EIF_KEY", "is not of its form"),
    ],
)
def test_a_bad_file_is_refused_naming_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    result = read_with_bash(write(tmp_path, text))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{key}: ")
    assert problem in result.stdout
    assert not (tmp_path / "x").exists()


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    result = read_with_bash(write(tmp_path, "# a comment\n\n" + render(VALID)))
    assert result.returncode == 0, result.stdout


def test_the_patterns_file_is_shipped_with_the_host_files() -> None:
    from infra.constants import CODE_ASSET_FILES  # noqa: PLC0415

    assert str(PATTERNS_FILE.relative_to(HOST_FILES_DIR.parents[2])) in CODE_ASSET_FILES
    assert "infra/constructs/host/demo-env.sh" in CODE_ASSET_FILES

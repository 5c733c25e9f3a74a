"""One synthesized template per session (default context); a few cached variants for context knobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, assertions

from infra.app import build_app
from infra.constants import REPO_ROOT
from tests.infra.cfn import Json

CDK_JSON_CONTEXT: Mapping[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
PCR0_GIVEN = "ab" * 48


@dataclass(frozen=True)
class Synth:
    template: Json
    assertions: assertions.Template
    outdir: Path

    @property
    def json_path(self) -> Path:
        return self.outdir / "NitroEnclaveDemo.template.json"


SynthFn = Callable[[Mapping[str, Any]], Synth]


def _synth(outdir: Path, overrides: Mapping[str, Any]) -> Synth:
    app = App(context={**CDK_JSON_CONTEXT, **overrides}, outdir=str(outdir))
    stack = build_app(app)
    assembly = app.synth()
    template: Json = assembly.get_stack_artifact(stack.artifact_id).template
    return Synth(template=template, assertions=assertions.Template.from_json(template), outdir=outdir)


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthFn:
    cache: dict[str, Synth] = {}

    def run(overrides: Mapping[str, Any]) -> Synth:
        key = json.dumps(overrides, sort_keys=True)
        if key not in cache:
            cache[key] = _synth(tmp_path_factory.mktemp("cdk.out"), overrides)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def default(synth: SynthFn) -> Synth:
    return synth({})


@pytest.fixture(scope="session")
def template(default: Synth) -> Json:
    return default.template


@pytest.fixture(scope="session")
def debug(synth: SynthFn) -> Synth:
    return synth({"enclave_debug": "true"})


@pytest.fixture(scope="session")
def given_pcr0(synth: SynthFn) -> Synth:
    return synth({"enclave_pcr0": PCR0_GIVEN.upper()})


@pytest.fixture(scope="session")
def isolated(synth: SynthFn) -> Synth:
    return synth({"network": "isolated"})

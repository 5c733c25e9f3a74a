"""The README's pictures: Mermaid's own parser accepts them, and everything they draw exists.

Each node, participant and box in the pictures maps to a file in this repository or to a CloudFormation
resource type in the synthesized template; a name with no mapping, a mapping no picture uses, a missing
file or a missing resource type fails. Parsing runs Mermaid under Node with jsdom (mermaid_graph.mjs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.enclave.recipient_keys import KEY_LIFETIME_S
from app.shared import settings
from infra.constants import REPO_ROOT
from tests.infra.conftest import Synth

README = REPO_ROOT / "README.md"
GRAPH_SCRIPT = Path(__file__).with_name("mermaid_graph.mjs")
MERMAID = REPO_ROOT / "node_modules" / "mermaid"


@dataclass(frozen=True)
class InRepo:
    path: str  # relative to the repository root


@dataclass(frozen=True)
class InTemplate:
    resource_type: str


# Node, participant and group ids of every picture, and what stands behind each.
COMPONENTS: dict[str, InRepo | InTemplate] = {
    "producer": InRepo("app/producer/__main__.py"),
    "kms": InTemplate("AWS::KMS::Key"),
    "cards": InTemplate("AWS::SQS::Queue"),
    "dlq": InTemplate("AWS::SQS::Queue"),
    "results": InTemplate("AWS::SQS::Queue"),
    "instance": InTemplate("AWS::AutoScaling::AutoScalingGroup"),  # one host of the group
    "imagebuild": InTemplate("Custom::EnclaveImageBuild"),
    "eifs": InTemplate("AWS::S3::Bucket"),
    "relay": InRepo("app/parent/relay.py"),
    "proxy": InRepo("infra/constructs/host/vsock-proxy.yaml"),  # the stock vsock-proxy, our allowlist
    "sink": InRepo("app/parent/log_sink.py"),
    "enclave": InRepo("app/enclave/Dockerfile"),
    "server": InRepo("app/enclave/server.py"),
    "kmsclient": InRepo("app/enclave/kms_client.py"),
    "nsm": InRepo("app/enclave/nsm.py"),
    # local mode's stand-ins
    "emulator": InRepo("app/local/emulator.py"),
    "lkms": InRepo("app/local/kms_recipient.py"),
    "lcards": InRepo("app/local/provision.py"),
    "ldlq": InRepo("app/local/provision.py"),
    "lresults": InRepo("app/local/provision.py"),
    "machine": InRepo("app/local/stack.py"),
    "lenclave": InRepo("app/local/enclave.py"),
    "swnsm": InRepo("app/local/software_nsm.py"),
}
# AWS operations the pictures name, and the boto3 method our code must call for each.
API_CALLS = {
    "Encrypt": "encrypt",
    "Decrypt": "decrypt",
    "SendMessageBatch": "send_message_batch",
    "ReceiveMessage": "receive_message",
    "DeleteMessageBatch": "delete_message_batch",
}
# One card's path, in order, as the sequence diagram must tell it (the list of steps).
CARD_STEPS = (
    "Encrypt", "SendMessageBatch", "ReceiveMessage", "ciphertext", "attestation request",
    "Decrypt with Recipient", "CiphertextForRecipient", "CMS unwrap", "last 4", "SendMessageBatch",
)  # fmt: skip
VSOCK_LABEL = re.compile(r"vsock (\d+):(\d+)")

Diagram = dict[str, Any]


def run_graph_script(markdown: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not MERMAID.is_dir():
        pytest.fail("Mermaid's parser is missing: run `make node_modules/.installed` (npm ci) first")
    return subprocess.run(
        [node, str(GRAPH_SCRIPT), str(markdown)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def pictures() -> list[Diagram]:
    answer = run_graph_script(README)
    assert answer.returncode == 0, answer.stderr
    diagrams: list[Diagram] = json.loads(answer.stdout)
    return diagrams


def by_type(pictures: list[Diagram], kind: str) -> list[Diagram]:
    return [d for d in pictures if d["type"] == kind]


def drawn_ids(pictures: list[Diagram]) -> Iterator[str]:
    for diagram in pictures:
        yield from (node["id"] for node in diagram["nodes"])
        if diagram["type"] != "sequence":  # sequence boxes have titles, not ids; see the boundary test
            yield from (group["id"] for group in diagram["groups"])


def labels(pictures: list[Diagram]) -> Iterator[str]:
    for diagram in pictures:
        yield from (edge["label"] for edge in diagram["edges"])
        yield from (node["label"] for node in diagram["nodes"])


def test_mermaid_rejects_a_broken_picture(tmp_path: Path) -> None:
    broken = tmp_path / "broken.md"
    broken.write_text("# x\n\n```mermaid\nflowchart LR\n  a -->|no end b\n```\n")
    answer = run_graph_script(broken)
    assert answer.returncode == 1
    assert f"{broken}:4:" in answer.stderr


def test_the_readme_has_an_architecture_and_a_sequence_picture_for_aws_and_local_mode(
    pictures: list[Diagram],
) -> None:
    assert [d["type"] for d in pictures] == ["flowchart-v2", "flowchart-v2", "sequence", "sequence"]


def test_the_readme_opens_with_two_lines_the_commands_and_the_pictures() -> None:
    text = README.read_text(encoding="utf-8")
    outside_details = re.sub(r"<details>.*?</details>", "", text, flags=re.DOTALL)
    title, _, body = outside_details.partition("\n")
    intro = body.split("```", 1)[0].strip().splitlines()
    fences = re.findall(r"^```(\w+)\n(\w+)?", body, flags=re.MULTILINE)
    assert title == "# nitro-enclave-demo"
    assert len(intro) == 2
    assert fences[:3] == [("sh", "make"), ("mermaid", "flowchart"), ("mermaid", "sequenceDiagram")]
    commands = body.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in commands.splitlines()] == [["make", "demo"], ["make", "test"]]


def test_every_component_drawn_is_mapped_and_every_mapping_is_drawn(pictures: list[Diagram]) -> None:
    drawn = set(drawn_ids(pictures))
    assert drawn - COMPONENTS.keys() == set(), "drawn but not mapped in COMPONENTS"
    assert COMPONENTS.keys() - drawn == set(), "mapped but no longer drawn"


def test_every_file_behind_a_picture_exists() -> None:
    paths = {c.path for c in COMPONENTS.values() if isinstance(c, InRepo)}
    assert {p for p in paths if not (REPO_ROOT / p).is_file()} == set()


def test_every_aws_resource_in_the_pictures_is_in_the_template(default: Synth) -> None:
    types = {resource["Type"] for resource in default.template["Resources"].values()}
    wanted = {c.resource_type for c in COMPONENTS.values() if isinstance(c, InTemplate)}
    assert wanted - types == set()


def test_every_aws_call_the_pictures_name_is_one_the_programs_make(pictures: list[Diagram]) -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "app").rglob("*.py"))
    named = {word for label in labels(pictures) for word in re.findall(r"[A-Z][A-Za-z]+", label)}
    assert named & API_CALLS.keys() == API_CALLS.keys()
    assert {op for op, method in API_CALLS.items() if f".{method}(" not in code} == set()


def test_the_trust_boundary_holds_the_enclave_and_nothing_of_the_parent(pictures: list[Diagram]) -> None:
    aws_architecture, local_architecture = by_type(pictures, "flowchart-v2")
    groups = {g["id"]: set(g["members"]) for g in aws_architecture["groups"]}
    assert groups["enclave"] == {"server", "kmsclient", "nsm"}
    assert "enclave" in groups["instance"]
    local_groups = {g["id"]: set(g["members"]) for g in local_architecture["groups"]}
    assert local_groups["lenclave"] == {"server", "kmsclient", "swnsm"}
    for sequence in by_type(pictures, "sequence"):
        (box,) = sequence["groups"]
        assert "server" in box["members"]
        assert "relay" not in box["members"]


def test_what_crosses_vsock_uses_the_ports_the_programs_use(pictures: list[Diagram]) -> None:
    used = {
        (settings.DEFAULT_ENCLAVE_CID, settings.ENCLAVE_PORT),
        tuple(int(part) for part in settings.DEFAULT_KMS_EGRESS_URL.removeprefix("vsock://").split(":")),
        (3, settings.ENCLAVE_LOG_PORT),  # the parent's CID
    }
    drawn = {(int(c), int(p)) for label in labels(pictures) for c, p in VSOCK_LABEL.findall(label)}
    assert drawn == used


def test_one_card_goes_through_every_step_in_order(pictures: list[Diagram]) -> None:
    for sequence in by_type(pictures, "sequence"):
        messages = [edge["label"] for edge in sequence["edges"]]
        position = 0
        for step in CARD_STEPS:
            found = next((i for i in range(position, len(messages)) if step in messages[i]), None)
            assert found is not None, f"{step!r} missing after {messages[position - 1]!r}"
            position = found + 1


def test_the_key_pair_lifetime_drawn_is_the_enclaves(pictures: list[Diagram]) -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(f"older than {KEY_LIFETIME_S:g} s") == len(by_type(pictures, "sequence"))

"""The synthesized stack, read as CloudFormation reads it: the template, the code asset it points at,
and the instance's user data rendered with a resolution map of what the rehearsal created.

Synth is the same call the infra tests make (tests/infra/conftest.py): `infra.app.build_app` with the
context of cdk.json. The code asset is zipped from cdk.out the way the CDK CLI publishes a `zip` asset:
the directory's contents, relative paths, no top-level folder.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rehearsal.cfn import Json, Resolver

INSTANCE_TYPE = "AWS::EC2::Instance"
LAUNCH_TEMPLATE_TYPE = "AWS::EC2::LaunchTemplate"


@dataclass(frozen=True)
class Synthesized:
    template: Json
    outdir: Path

    def resources(self, type_name: str) -> dict[str, Json]:
        return {k: r for k, r in self.template["Resources"].items() if r["Type"] == type_name}

    def only(self, type_name: str) -> tuple[str, Json]:
        found = self.resources(type_name)
        if len(found) != 1:
            raise LookupError(f"expected one {type_name} in the template, found {sorted(found)}")
        return next(iter(found.items()))

    def properties(self, logical_id: str) -> Json:
        props: Json = self.template["Resources"][logical_id].get("Properties", {})
        return props

    def user_data_node(self) -> Json:
        """The hosts' UserData: the launch template's (LaunchTemplateData), else an instance's."""
        templates = self.resources(LAUNCH_TEMPLATE_TYPE)
        if templates:
            _, launch_template = self.only(LAUNCH_TEMPLATE_TYPE)
            node: Json = launch_template["Properties"]["LaunchTemplateData"]["UserData"]
            return node
        _, instance = self.only(INSTANCE_TYPE)
        found: Json = instance["Properties"]["UserData"]
        return found

    def user_data_variables(self) -> dict[str, Any]:
        """The UserData is Fn::Base64 of Fn::Sub [body, variables]."""
        return dict(self.user_data_node()["Fn::Base64"]["Fn::Sub"][1])

    def render_user_data(self, resolver: Resolver) -> str:
        return resolver.text(self.user_data_node())

    def with_text_replaced(self, old: str, new: str) -> Synthesized:
        """The template as a new synth would give it with one string (an asset hash) changed everywhere."""
        replaced: Json = json.loads(json.dumps(self.template).replace(old, new))
        return Synthesized(template=replaced, outdir=self.outdir)

    def file_assets(self) -> dict[str, Json]:
        """The asset manifest's file assets by id (the id is the asset hash): source and destinations."""
        manifest = json.loads(next(self.outdir.glob("*.assets.json")).read_text(encoding="utf-8"))
        files: dict[str, Json] = manifest["files"]
        return files


def synth(outdir: Path) -> Synthesized:
    """Synthesize the stack with the repository's cdk.json context into `outdir`."""
    from aws_cdk import App  # noqa: PLC0415 - heavy (jsii); only the synth step needs it

    from infra.app import build_app  # noqa: PLC0415
    from infra.constants import REPO_ROOT  # noqa: PLC0415

    context = json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    app = App(context=context, outdir=str(outdir))
    stack = build_app(app)
    template: Json = app.synth().get_stack_artifact(stack.artifact_id).template
    return Synthesized(template=template, outdir=outdir)


def zip_directory(source: Path, target: Path, patch: Callable[[str, bytes], bytes]) -> Path:
    """A `zip` asset as the CDK CLI publishes it: the directory's files by relative path, each `patch`ed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                name = path.relative_to(source).as_posix()
                archive.writestr(name, patch(name, path.read_bytes()))
    return target

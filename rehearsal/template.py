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

    def user_data_variables(self) -> dict[str, Any]:
        """The instance's UserData is Fn::Base64 of Fn::Sub [body, variables]."""
        _, instance = self.only(INSTANCE_TYPE)
        sub = instance["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
        return dict(sub[1])

    def render_user_data(self, resolver: Resolver) -> str:
        _, instance = self.only(INSTANCE_TYPE)
        return resolver.text(instance["Properties"]["UserData"])


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


def code_asset_zip(
    synthesized: Synthesized, object_key: str, target: Path, patch: Callable[[str, bytes], bytes]
) -> Path:
    """Zip the cdk.out asset directory published as `object_key` (the user data's CodeKey)."""
    manifest = json.loads(next(synthesized.outdir.glob("*.assets.json")).read_text(encoding="utf-8"))
    for asset in manifest["files"].values():
        keys = {d["objectKey"] for d in asset["destinations"].values()}
        if object_key in keys and asset["source"]["packaging"] == "zip":
            source = synthesized.outdir / asset["source"]["path"]
            with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(source.rglob("*")):
                    if path.is_file():
                        name = path.relative_to(source).as_posix()
                        archive.writestr(name, patch(name, path.read_bytes()))
            return target
    raise LookupError(f"no zip asset with object key {object_key} in {synthesized.outdir}")

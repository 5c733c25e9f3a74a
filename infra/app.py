"""CDK entry point: reads the context once into validated Settings, builds the one stack, runs cdk-nag.

Environment-agnostic on purpose: synth needs no AWS credentials and does no lookups. The region the CDK CLI
resolved (CDK_DEFAULT_REGION, read here and nowhere else) only serves to refuse a partition other than `aws`.
"""

from __future__ import annotations

import os
import sys

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import constants
from infra.nag import acknowledge_findings
from infra.partition import refuse_other_partitions
from infra.settings import DEFAULTS, SettingsError, load_settings
from infra.stack import NitroEnclaveDemoStack


def build_app(app: App, *, region: str | None = None) -> NitroEnclaveDemoStack:
    """Build the stack and its checks into ``app``; raises SettingsError on an impossible context value
    or a ``region`` (the CDK CLI's, when it knows one) outside the `aws` partition."""
    settings = load_settings(app.node.try_get_context, region=region)
    stack = NitroEnclaveDemoStack(app, constants.STACK_ID, settings=settings)
    refuse_other_partitions(stack)
    acknowledge_findings(stack)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = App()
    try:
        build_app(app, region=os.environ.get("CDK_DEFAULT_REGION"))
    except SettingsError as error:
        print(f"cannot synthesize: {error} (context knobs: {sorted(DEFAULTS)})", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())

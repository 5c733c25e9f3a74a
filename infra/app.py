"""CDK entry point: reads the context once into validated Settings, builds the one stack, runs cdk-nag.

Environment-agnostic on purpose: synth needs no AWS credentials and does no lookups.
"""

from __future__ import annotations

import sys

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import constants
from infra.nag import acknowledge_findings
from infra.settings import DEFAULTS, SettingsError, load_settings
from infra.stack import NitroEnclaveDemoStack


def build_app(app: App) -> NitroEnclaveDemoStack:
    """Build the stack and its checks into ``app``; raises SettingsError on an impossible context value."""
    settings = load_settings(app.node.try_get_context)
    stack = NitroEnclaveDemoStack(app, constants.STACK_ID, settings=settings)
    acknowledge_findings(stack)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stack


def main() -> int:
    app = App()
    try:
        build_app(app)
    except SettingsError as error:
        print(f"invalid CDK context: {error} (knobs and defaults: {sorted(DEFAULTS)})", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())

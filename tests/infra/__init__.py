"""Tests of the CDK stack (infra/): one synthesized template per session, checks on what matters."""

import os

# jsii warns on every import under Node 20; the Makefile sets the same variable.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

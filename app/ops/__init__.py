"""Operator tools for the parent instance: `doctor` (known failure modes, in words) and `status`."""

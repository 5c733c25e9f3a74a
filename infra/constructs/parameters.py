"""SSM parameter names of the deployment, known before the parameters exist so that policies can name them
without a dependency cycle."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Aws

from infra import constants


@dataclass(frozen=True)
class ParameterNames:
    measurements: str
    pinned_pcr0: str

    @classmethod
    def for_stack(cls) -> ParameterNames:
        prefix = f"/{constants.PROJECT}/{Aws.STACK_NAME}"
        return cls(measurements=f"{prefix}/measurements", pinned_pcr0=f"{prefix}/pinned-pcr0")

#!/usr/bin/env bash
# `make measure`: rebuild the enclave image from this checkout exactly as CodeBuild does (build-eif.sh) and
# compare its PCR0 with the deployed pin. Exit 0 when they match; 1 with both values when they differ; 2 when
# this machine cannot build (no Docker or Nitro Enclaves CLI) or the pin cannot be read.
# The pin is the stack's SSM parameter /nitro-enclave-demo/<stack>/pinned-pcr0 (the build's PCR0, written by
# CloudFormation), read with the AWS CLI for STACK_NAME (default NitroEnclaveDemo) in the CLI's configured
# region; or give it as PCR0=<hex> to compare with a value you already have. OUT_DIR (default .measure) keeps
# the rebuilt enclave.eif and measurements.json.
# The nitro-cli version matters as much as the code (its kernel, init and nsm.ko blobs are in PCR0): the
# version the deployed build used is read from the stack's measurements parameter (its NitroCliVersion), or
# given as NITRO_CLI_VERSION=X.Y.Z; build-eif.sh then refuses another installed version (exit 2 here). With
# a PCR0 given and no version, the rebuild runs with whatever nitro-cli is installed, with a warning.
set -euo pipefail

stack_name="${STACK_NAME:-NitroEnclaveDemo}"
out_dir="${OUT_DIR:-.measure}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cannot() {
  echo "make measure: $*" >&2
  exit 2
}

for tool in docker nitro-cli; do
  command -v "$tool" >/dev/null || cannot "needs Docker and the Nitro Enclaves CLI (nitro-cli build-enclave); $tool is not on PATH. On Amazon Linux 2023: dnf install docker aws-nitro-enclaves-cli-devel"
done

pinned="${PCR0:-}"
deployed_version="${NITRO_CLI_VERSION:-}"
if [[ -z "$pinned" ]]; then
  command -v aws >/dev/null || cannot "the AWS CLI is needed to read the pin (or give it: make measure PCR0=<hex>)"
  parameter="/nitro-enclave-demo/$stack_name/pinned-pcr0"
  pinned="$(aws ssm get-parameter --name "$parameter" --query Parameter.Value --output text)" \
    || cannot "could not read SSM parameter $parameter (stack $stack_name)"
  if [[ -z "$deployed_version" ]]; then
    parameter="/nitro-enclave-demo/$stack_name/measurements"
    measurements="$(aws ssm get-parameter --name "$parameter" --query Parameter.Value --output text)" \
      || cannot "could not read SSM parameter $parameter (stack $stack_name)"
    # "unknown": the deployed build predates the recording (infra/build/handler/enclave_build.py).
    deployed_version="$(python3 -c 'import json, sys; v = json.loads(sys.argv[1]).get("NitroCliVersion", ""); print("" if v == "unknown" else v)' \
      "$measurements")" || cannot "SSM parameter $parameter is not the measurements JSON"
  fi
fi

if [[ -n "$deployed_version" ]]; then
  [[ "$deployed_version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || cannot "nitro-cli version '$deployed_version' is not X.Y.Z"
  echo "the deployed image was built with nitro-cli $deployed_version; install that version to compare:" \
    "dnf install aws-nitro-enclaves-cli-$deployed_version aws-nitro-enclaves-cli-devel-$deployed_version" >&2
else
  echo "make measure: WARNING: the deployed nitro-cli version is unknown (give NITRO_CLI_VERSION=X.Y.Z):" \
    "a PCR0 rebuilt with another version differs even for the same code" >&2
fi

NITRO_CLI_VERSION="$deployed_version" bash "$here/build-eif.sh" "$out_dir" \
  || cannot "the rebuild failed (see build-eif.sh's message above), so nothing was compared"
rebuilt="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["Measurements"]["PCR0"])' \
  "$out_dir/measurements.json")"

if [[ "$rebuilt" == "$pinned" ]]; then
  echo "PCR0 matches the deployed pin: $rebuilt"
  exit 0
fi
echo "PCR0 differs from the deployed pin" >&2
echo "  rebuilt:  $rebuilt" >&2
echo "  deployed: $pinned" >&2
exit 1

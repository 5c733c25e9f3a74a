#!/usr/bin/env bash
# Builds the enclave image deterministically and measures it: OUT_DIR/enclave.eif, OUT_DIR/measurements.json
# (nitro-cli build-enclave's stdout, {"Measurements": {"HashAlgorithm": .., "PCR0": .., "PCR1": .., "PCR2": ..}})
# and OUT_DIR/nitro-cli-version (X.Y.Z of the nitro-cli that built it: its blobs are part of PCR0 and PCR1).
# With NITRO_CLI_VERSION=X.Y.Z set, any other installed nitro-cli version is refused before anything builds,
# and so is a nitro-cli and Docker daemon pair known not to work together (nitro-cli-docker-api-mismatch).
# Run by the CodeBuild buildspec (infra/build/buildspec.yml) and by `make measure` (infra/build/measure.sh).
# Usage: infra/build/build-eif.sh OUT_DIR
#
# Why each step (docs/reproducible-build.md): the build context is the normalized tar of infra/build/context.py
# (not the checkout's directory, whose mtimes and modes differ per clone); SOURCE_DATE_EPOCH is the fixed value
# context.py holds, given as the build arg the Dockerfile's last step clamps every mtime to, and exported so
# buildx, which forwards $SOURCE_DATE_EPOCH on its own, can never forward another; --no-cache so a layer
# cached from an earlier build is never reused; and PCR0 must be a real measurement, not all zeros (what an
# enclave in debug mode reports), before anything uploads the EIF.
set -euo pipefail
umask 022

IMAGE="nitro-enclave-demo-enclave:build"
ZERO_PCR="$(printf '0%.0s' {1..96})"

fail() {
  echo "build-eif.sh: $*" >&2
  exit 1
}

[[ $# -eq 1 && -n "$1" ]] || fail "usage: build-eif.sh OUT_DIR"
out_dir="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_root="$(cd "$here/../.." && pwd)"
for tool in python3 docker nitro-cli; do
  command -v "$tool" >/dev/null || fail "$tool is not on PATH (this build needs Docker and the Nitro Enclaves CLI)"
done

mkdir -p "$out_dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

SOURCE_DATE_EPOCH="$(python3 "$here/context.py" epoch)"
export SOURCE_DATE_EPOCH
context_sha256="$(python3 "$here/context.py" write --source "$source_root" "$work/context.tar")"
echo "build-eif.sh: build context sha256 $context_sha256, SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH" >&2
# clap's `--version` prints "Nitro CLI X.Y.Z" (aws/aws-nitro-enclaves-cli src/main.rs: Command "Nitro CLI",
# .version(CARGO_PKG_VERSION)); the kernel, init and nsm.ko blobs ship in the same package version.
version_line="$(nitro-cli --version 2>/dev/null)" || fail "nitro-cli --version failed"
[[ "$version_line" =~ ^Nitro\ CLI\ ([0-9]+\.[0-9]+\.[0-9]+)([^0-9.]|$) ]] \
  || fail "nitro-cli --version printed '$version_line', not 'Nitro CLI X.Y.Z'"
nitro_cli_version="${BASH_REMATCH[1]}"
if [[ -n "${NITRO_CLI_VERSION:-}" && "$NITRO_CLI_VERSION" != "$nitro_cli_version" ]]; then
  fail "nitro-cli $nitro_cli_version is installed, but NITRO_CLI_VERSION pins $NITRO_CLI_VERSION: PCR0 and PCR1 depend on its blobs"
fi
echo "build-eif.sh: nitro-cli $nitro_cli_version" >&2

# The Docker daemon nitro-cli's bundled linuxkit will talk to. `docker version --format` renders the daemon's
# /version answer (moby api/types Version: Version, MinAPIVersion); without a daemon it fails.
docker_line="$(docker version --format '{{.Server.Version}} {{.Server.MinAPIVersion}}' 2>/dev/null)" \
  || fail "docker version could not reach the Docker daemon"
[[ "$docker_line" =~ ^([0-9]+\.[0-9]+\.[0-9]+)[^[:space:]]*\ ([0-9]+)\.([0-9]+)$ ]] \
  || fail "docker version printed '$docker_line', not 'X.Y.Z A.B' (server version, minimum API version)"
docker_version="${BASH_REMATCH[1]}"
docker_min_api="${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
docker_min_api_n=$((10#${BASH_REMATCH[2]} * 1000 + 10#${BASH_REMATCH[3]}))
echo "build-eif.sh: Docker $docker_version (minimum API $docker_min_api)" >&2

# A combination known not to work (docs/decisions/nitro-cli-and-docker.md): nitro-cli up to 1.3.1 bundles a
# linuxkit based on v0.8, which sets DOCKER_API_VERSION=1.30 for every call (linuxkit v0.8
# src/cmd/linuxkit/moby/docker.go, dockerClient); a daemon whose minimum API is above 1.30 (Docker 29: 1.44)
# refuses it, and build-enclave fails with E48 (aws/aws-nitro-enclaves-cli#746). 1.3.2 moved to a linuxkit
# that negotiates the version (v1.2.0 src/cmd/linuxkit/docker/cmd.go, WithAPIVersionNegotiation).
IFS=. read -r cli_major cli_minor cli_patch <<<"$nitro_cli_version"
if ((10#$cli_major * 1000000 + 10#$cli_minor * 1000 + 10#$cli_patch < 1003002 && docker_min_api_n > 1030)); then
  fail "nitro-cli-docker-api-mismatch: nitro-cli $nitro_cli_version bundles linuxkit v0.8, which speaks only" \
    "Docker API 1.30, but Docker $docker_version refuses API versions below $docker_min_api" \
    "(aws/aws-nitro-enclaves-cli#746); install nitro-cli 1.3.2 or later (-c nitro_cli_version)"
fi

# The tar on stdin is the whole context; -f names the Dockerfile inside it. Docker's output goes to stderr so
# that this script's stdout stays free for its caller.
docker build --no-cache --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
  -f enclave/Dockerfile -t "$IMAGE" - <"$work/context.tar" >&2

nitro-cli build-enclave --docker-uri "$IMAGE" --output-file "$out_dir/enclave.eif" >"$out_dir/measurements.json"

pcr0="$(python3 -c '
import json, re, sys
pcr0 = json.load(open(sys.argv[1]))["Measurements"]["PCR0"]
print(pcr0 if isinstance(pcr0, str) and re.fullmatch("[0-9a-f]{96}", pcr0) else "")
' "$out_dir/measurements.json" 2>/dev/null)" || pcr0=""
[[ -n "$pcr0" ]] || fail "$out_dir/measurements.json has no PCR0 of 96 lower-case hex digits"
[[ "$pcr0" != "$ZERO_PCR" ]] || fail "PCR0 is all zeros: that is no image's measurement (debug mode reports it)"
[[ -s "$out_dir/enclave.eif" ]] || fail "nitro-cli wrote no $out_dir/enclave.eif"
printf '%s\n' "$nitro_cli_version" >"$out_dir/nitro-cli-version"
echo "build-eif.sh: PCR0 $pcr0" >&2

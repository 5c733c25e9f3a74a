#!/bin/bash
# Bootstrap of the nitro-enclave-demo parent instance; runs once, as root, from the user data.
# Installs the Nitro CLI and Docker, starts the allocator and vsock-proxy, installs the relay and producer,
# builds the EIF, keeps its measurements, starts the enclave and relay services and checks the enclave
# answers. Static file: deploy-time values come from /etc/nitro-enclave-demo/demo.env (written by the user
# data). The last step signals the stack's wait condition with PCR0, which the KMS key policy pins.
set -Eeuo pipefail

# Overridable only so tests can run the script against scratch directories.
readonly CONF_DIR="${NITRO_ENCLAVE_DEMO_CONF_DIR:-/etc/nitro-enclave-demo}"
readonly HOME_DIR="${NITRO_ENCLAVE_DEMO_HOME_DIR:-/opt/nitro-enclave-demo}"
readonly SRC_DIR="$HOME_DIR/src"
readonly VENV_DIR="$HOME_DIR/venv"
readonly HOST_DIR="$SRC_DIR/infra/constructs/host"
readonly MEASUREMENTS="$HOME_DIR/measurements.json"
readonly IMAGE=nitro-enclave-demo-enclave:latest
readonly HEALTH_ATTEMPTS=30
readonly HEALTH_INTERVAL_S=10
readonly CW_AGENT_CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl
readonly JOURNAL_EXPORTS=(nitro-enclave-demo-relay nitro-enclave-demo-logs nitro-enclave-demo-enclave
  nitro-enclaves-vsock-proxy nitro-enclaves-allocator)
readonly ZERO_PCR=000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
STEP="starting"

# cloud-final runs the user data as root with no HOME. nitro-cli's `build-enclave` needs NITRO_CLI_ARTIFACTS,
# else HOME, for its intermediate files, and stops with E51 when neither is set (artifacts_path() in
# src/lib.rs of aws/aws-nitro-enclaves-cli). Give it a directory of the demo's own. HOME is set to root's
# too, so docker, pip and the AWS CLI read root's configuration directly instead of each tool's fallback.
export NITRO_CLI_ARTIFACTS="$HOME_DIR/nitro-cli-artifacts"
export HOME="${HOME:-/root}"

# A copy of everything this script prints (cloud-init still gets it all): the failure signal quotes the
# failing step's last lines, because a failed first deploy rolls back and deletes the instance and its log
# group, and the signal's Reason, kept in the stack events, is then all that is left.
readonly BOOT_LOG="$HOME_DIR/bootstrap.log"
readonly REASON_OUTPUT_BYTES=1500
exec > >(tee -a "$BOOT_LOG") 2>&1

log() {
  printf 'nitro-enclave-demo bootstrap: %s\n' "$*"
}

# Status (SUCCESS or FAILURE), reason, data: one signal to the wait condition handle (a presigned URL).
signal() {
  local body
  body=$(python3 -c 'import json, sys; print(json.dumps({"Status": sys.argv[1], "Reason": sys.argv[2][:3900], "UniqueId": "pcr0", "Data": sys.argv[3]}))' "$1" "$2" "$3")
  curl -sS --fail --retry 5 -X PUT -H 'Content-Type:' --data-binary "$body" "$SIGNAL_URL" >/dev/null
}

# The first failing finding of `app.ops doctor`, if the relay's venv exists yet (printed in full to the log).
diagnosis() {
  local report
  [[ -x "$VENV_DIR/bin/python" ]] || return 0
  report=$("$VENV_DIR/bin/python" -m app.ops doctor 2>/dev/null) || true
  printf '%s\n' "$report" >&2
  printf '%s\n' "$report" | grep -m1 '^\[FAIL\]' || true
}

# The failing step's output (since its "step:" line), last REASON_OUTPUT_BYTES, newlines shown as " | ".
# tee writes asynchronously: wait (up to 5 s) until a token printed now has reached the copy.
step_output() {
  local token="output-ends-$$-$RANDOM" attempt
  log "$token" >&2 # stdout is the caller's $(...); stderr goes to the copy
  for ((attempt = 0; attempt < 50; attempt++)); do
    grep -q "$token" "$BOOT_LOG" 2>/dev/null && break
    sleep 0.1
  done
  awk -v token="$token" 'index($0, token) { exit } /^nitro-enclave-demo bootstrap: step: / { out = ""; next }
    { out = out $0 " | " } END { printf "%s", out }' "$BOOT_LOG" 2>/dev/null | tail -c "$REASON_OUTPUT_BYTES" || true
}

on_error() {
  local rc=$? found output
  trap - ERR
  output=$(step_output) || true
  [[ -z "${SIGNAL_URL:-}" ]] || output=${output//"$SIGNAL_URL"/<signal url>} # a bearer secret; events are not
  log "FAILED: $STEP (exit $rc)"
  found=$(diagnosis)
  signal FAILURE "$STEP failed (exit $rc); ${found:+doctor: $found; }the rollback deletes the instance and the log group ${CW_LOG_GROUP:-}: keep them with \`cdk deploy --no-rollback\`; last output: ${output:-none}" failed || true
  exit "$rc"
}
trap on_error ERR

step() {
  STEP="$1"
  log "step: $STEP"
}

fail() {
  STEP="$1"
  false
}

: "${SIGNAL_URL:?SIGNAL_URL must be set by the user data}"
set -a
# shellcheck source=/dev/null
. "$CONF_DIR/demo.env"
set +a

step "install the Nitro CLI, Docker, Python 3.11 and jq with dnf"
dnf install -y -q aws-nitro-enclaves-cli aws-nitro-enclaves-cli-devel docker python3.11 python3.11-pip jq \
  amazon-cloudwatch-agent

step "check enclave support: /dev/nitro_enclaves exists only on an instance launched with enclaves enabled"
test -c /dev/nitro_enclaves

step "ship logs to CloudWatch Logs group $CW_LOG_GROUP (journal exports and the CloudWatch agent)"
# Created here too: systemd may open StandardOutput=append: before it creates LogsDirectory=.
install -d -m 0755 /var/log/nitro-enclave-demo /var/lib/nitro-enclave-demo
install -m 0644 "$HOST_DIR/nitro-enclave-demo-journal@.service" /etc/systemd/system/
systemctl daemon-reload
for unit in "${JOURNAL_EXPORTS[@]}"; do
  systemctl enable --now "nitro-enclave-demo-journal@$unit.service"
done
"$CW_AGENT_CTL" -a fetch-config -m ec2 -s -c "file:$CONF_DIR/amazon-cloudwatch-agent.json"

step "write /etc/nitro_enclaves/allocator.yaml ($ENCLAVE_MEMORY_MIB MiB, $ENCLAVE_CPU_COUNT vCPUs) and the vsock-proxy allowlist"
install -m 0644 "$CONF_DIR/allocator.yaml" /etc/nitro_enclaves/allocator.yaml
install -m 0644 "$CONF_DIR/vsock-proxy.yaml" /etc/nitro_enclaves/vsock-proxy.yaml
install -d -m 0755 /etc/systemd/system/nitro-enclaves-vsock-proxy.service.d
install -m 0644 "$HOST_DIR/vsock-proxy.override.conf" /etc/systemd/system/nitro-enclaves-vsock-proxy.service.d/override.conf
systemctl daemon-reload

step "start nitro-enclaves-allocator (E27 or a hugepages error: not enough free memory for $ENCLAVE_MEMORY_MIB MiB)"
systemctl enable --now nitro-enclaves-allocator.service

step "start nitro-enclaves-vsock-proxy (vsock port 8000 to kms.$AWS_REGION.amazonaws.com:443)"
systemctl enable --now nitro-enclaves-vsock-proxy.service

step "start Docker"
systemctl enable --now docker.service

step "install the relay and producer in $VENV_DIR (python3.11, pip from PyPI)"
python3.11 -m venv "$VENV_DIR"
"$VENV_DIR/bin/python" -m pip install -q --upgrade pip
"$VENV_DIR/bin/python" -m pip install -q "$SRC_DIR"

step "build the enclave Docker image $IMAGE"
docker build -q -f "$SRC_DIR/app/enclave/Dockerfile" -t "$IMAGE" "$SRC_DIR/app"

step "build the EIF $ENCLAVE_EIF (out of disk here means the root volume is too small)"
nitro-cli build-enclave --docker-uri "$IMAGE" --output-file "$ENCLAVE_EIF" >"$MEASUREMENTS"
pcr0=$(jq -er '.Measurements.PCR0 | ascii_downcase' "$MEASUREMENTS")
log "measurements: $(jq -c .Measurements "$MEASUREMENTS")"

step "check the EIF's PCR0 $pcr0"
if [[ "$pcr0" == "$ZERO_PCR" || ! "$pcr0" =~ ^[0-9a-f]{96}$ ]]; then
  fail "PCR0 check: nitro-cli reported an unusable PCR0 '$pcr0'"
fi
if [[ -n "${EXPECTED_PCR0:-}" && "$pcr0" != "$EXPECTED_PCR0" ]]; then
  fail "PCR0 check: this EIF has PCR0 $pcr0 but enclave_pcr0 pins $EXPECTED_PCR0; refusing to run it (rebuild elsewhere-built code identically, or deploy without enclave_pcr0)"
fi

step "start nitro-enclave-demo-enclave.service: CID $ENCLAVE_CID, debug mode $ENCLAVE_DEBUG, ready when it answers a ping (journalctl -u nitro-enclave-demo-enclave; nitro-cli describe-enclaves)"
install -d -m 0755 "$HOME_DIR/bin"
install -m 0755 "$HOST_DIR/enclave-run.sh" "$HOME_DIR/bin/enclave-run.sh"
install -m 0755 "$HOST_DIR/nitro-demo.sh" /usr/local/bin/nitro-demo
install -m 0644 "$HOST_DIR/nitro-enclave-demo-enclave.service" "$HOST_DIR/nitro-enclave-demo-relay.service" \
  "$HOST_DIR/nitro-enclave-demo-logs.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now nitro-enclave-demo-logs.service
systemctl enable --now nitro-enclave-demo-enclave.service

step "start nitro-enclave-demo-relay.service"
systemctl enable --now nitro-enclave-demo-relay.service

step "health check: the enclave answers a ping over $ENCLAVE_URL (see nitro-cli describe-enclaves, journalctl -u nitro-enclave-demo-enclave)"
healthy=false
for ((attempt = 1; attempt <= HEALTH_ATTEMPTS; attempt++)); do
  if "$VENV_DIR/bin/python" -m app.parent ping; then
    healthy=true
    break
  fi
  log "enclave not answering yet (attempt $attempt of $HEALTH_ATTEMPTS)"
  sleep "$HEALTH_INTERVAL_S"
done
if [[ "$healthy" != true ]]; then
  fail "health check: no answer to a ping over $ENCLAVE_URL after $HEALTH_ATTEMPTS attempts (see journalctl -u nitro-enclave-demo-enclave)"
fi
systemctl is-active --quiet nitro-enclave-demo-relay.service || fail "relay service is not running (journalctl -u nitro-enclave-demo-relay)"

step "doctor: known failure modes (informational; nitro-demo doctor runs it again)"
"$VENV_DIR/bin/python" -m app.ops doctor || log "doctor reported a failure above; the enclave answers, continuing"

step "signal CloudFormation: the enclave is up; the key policy pins PCR0 $pcr0"
trap - ERR
signal SUCCESS "enclave running with PCR0 $pcr0 (debug mode: $ENCLAVE_DEBUG)" "$pcr0"
log "done"

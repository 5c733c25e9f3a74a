#!/bin/bash
# Bootstrap of a nitro-enclave-demo host; runs once, as root, from the user data.
# Installs the Nitro CLI (its RPM pulls in Docker's package, whose daemon is masked at once: this host builds
# nothing), starts the allocator and vsock-proxy, installs the relay and producer, downloads exactly the EIF
# version CodeBuild built and refuses it unless nitro-cli describe-eif finds it intact (CheckCRC) with the
# pinned PCR0, starts the enclave, proves the crypto path with a canary decrypt (straight to the enclave, no
# relay), and only then starts the relay and signals SUCCESS to the stack's host group (SignalResource): no
# card is taken before the host is proven, and a failure after the enclave start leaves the relay stopped.
# The relay unit itself runs the canary before every start (ExecStartPre), so a reboot proves the host again.
# A host the group launches outside a stack operation (a replacement) runs the same steps; CloudFormation
# refuses its signal ("cannot be signaled"), which is logged, and the boot still ends "done".
# Static file: deploy-time values come from /etc/nitro-enclave-demo/demo.env (written by the user data),
# read as data by demo-env.sh.
set -Eeuo pipefail

# Overridable only so tests can run the script against scratch directories.
readonly CONF_DIR="${NITRO_ENCLAVE_DEMO_CONF_DIR:-/etc/nitro-enclave-demo}"
readonly HOME_DIR="${NITRO_ENCLAVE_DEMO_HOME_DIR:-/opt/nitro-enclave-demo}"
readonly SRC_DIR="$HOME_DIR/src"
readonly VENV_DIR="$HOME_DIR/venv"
readonly HOST_DIR="$SRC_DIR/infra/constructs/host"
readonly HEALTH_ATTEMPTS=30
readonly HEALTH_INTERVAL_S=10
readonly CW_AGENT_CTL=/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl
readonly JOURNAL_EXPORTS=(nitro-enclave-demo-relay nitro-enclave-demo-logs nitro-enclave-demo-enclave
  nitro-enclaves-vsock-proxy nitro-enclaves-allocator)
readonly IMDS=http://169.254.169.254/latest
# SignalResource's UniqueId is 1-64 characters (CloudFormation API reference, SignalResource).
readonly UNIQUE_ID_MAX=64
# Tries of the IMDS id and of SignalResource (2, 4, 8, 16 s between the latter) before a signal counts as failed.
readonly IMDS_ATTEMPTS=5
readonly SIGNAL_ATTEMPTS=5
readonly RELAY_UNIT=nitro-enclave-demo-relay.service
# CloudFormation's refusal when no stack operation waits for the group's signals (a host the group launched
# on its own, e.g. a replacement): ValidationError "Stack <arn> is in <STATE> state and cannot be signaled".
readonly NOT_WAITING_RE='\(ValidationError\).*cannot be signaled'
readonly NOT_WAITING_RC=3
STEP="starting"
STEP_ID="starting"
FAILURE_CODE=""
RELAY_INSTALLED=false # true from the enclave's start on: a failure then stops the relay

# cloud-final runs the user data as root with no HOME; pip and the AWS CLI read root's configuration.
export HOME="${HOME:-/root}"

# A copy of everything this script prints (cloud-init, and so the CloudWatch agent, still get it all): the
# failure report quotes the failing step's own last lines.
readonly BOOT_LOG="$HOME_DIR/bootstrap.log"
readonly REASON_OUTPUT_BYTES=1500
exec > >(tee -a "$BOOT_LOG") 2>&1

log() {
  printf 'nitro-enclave-demo bootstrap: %s\n' "$*"
}

# The instance's own id, from IMDSv2 (a session token first; the launch template requires tokens), tried
# IMDS_ATTEMPTS times: an IMDS call can fail for a moment. Prints nothing and returns 1 when every try failed
# or answered an empty id. (Called inside `signal ... || answer=$?`, where set -e and the ERR trap are off:
# every failure here is checked by hand.)
instance_id() {
  local token id attempt
  for ((attempt = 1; attempt <= IMDS_ATTEMPTS; attempt++)); do
    if token=$(curl -sS --fail -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/api/token") &&
      id=$(curl -sS --fail -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/instance-id") &&
      [[ -n "$id" ]]; then
      printf '%s\n' "$id"
      return 0
    fi
    ((attempt == IMDS_ATTEMPTS)) || sleep "$attempt"
  done
  return 1
}

# One signal to the host group's creation policy or rolling update: SUCCESS, or FAILURE with what failed.
# SignalResource has no reason field, so a FAILURE's UniqueId carries "<instance-id> <step>: <code>" (cut to
# 64 characters) into the stack events; the full reason is in this host's bootstrap log. The UniqueId of a
# SUCCESS is the bare instance id, as the API reference asks for Auto Scaling groups. Returns NOT_WAITING_RC
# when CloudFormation answers that nothing waits for a signal (CloudFormation's answer is printed).
# A throttled or failed call ("(Throttling) Rate exceeded", a network error) is tried again, SIGNAL_ATTEMPTS
# times in all with doubling waits; only CloudFormation's "cannot be signaled" ends it at once. (set -e and
# the ERR trap are off in here, as in instance_id: every failure is checked by hand.)
signal() {
  local status="$1" detail="${2:-}" id unique answer attempt
  if ! id=$(instance_id); then
    printf 'no instance id from IMDS (%s) after %s attempts: cannot signal\n' "$IMDS" "$IMDS_ATTEMPTS"
    return 1
  fi
  unique=$id
  [[ -z "$detail" ]] || unique=$(printf '%s %s' "$id" "$detail" | cut -c "1-$UNIQUE_ID_MAX")
  # ":-": a demo.env refused at step config may lack them; the call then fails and the log says so.
  local call=(aws cloudformation signal-resource --region "${AWS_REGION:-}" --stack-name "${STACK_NAME:-}"
    --logical-resource-id "${SIGNAL_RESOURCE:-}" --status "$status")
  for ((attempt = 1; attempt <= SIGNAL_ATTEMPTS; attempt++)); do
    answer=$("${call[@]}" --unique-id "$unique" 2>&1) && return 0
    # Should CloudFormation refuse a UniqueId that is not a bare instance id, the bare id still gets through.
    if [[ "$unique" != "$id" ]] && ! grep -qE "$NOT_WAITING_RE" <<<"$answer"; then
      answer=$("${call[@]}" --unique-id "$id" 2>&1) && return 0
    fi
    printf '%s\n' "$answer"
    grep -qE "$NOT_WAITING_RE" <<<"$answer" && return "$NOT_WAITING_RC"
    if ((attempt < SIGNAL_ATTEMPTS)); then
      log "signal $status not taken (attempt $attempt of $SIGNAL_ATTEMPTS); trying again in $((2 ** attempt)) s"
      sleep "$((2 ** attempt))"
    fi
  done
  return 1
}

# Nothing serves from a host that failed: the relay stopped and disabled, if its unit was installed.
stop_relay() {
  [[ "$RELAY_INSTALLED" == true ]] || return 0
  systemctl disable --now "$RELAY_UNIT" || log "could not stop $RELAY_UNIT"
  log "$RELAY_UNIT stopped: this host takes no cards"
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
  log "FAILED: $STEP (exit $rc)"
  stop_relay
  found=$(diagnosis)
  log "failure report: $STEP failed (exit $rc); ${found:+doctor: $found; }a failed first deploy rolls back and deletes this host and the log group ${CW_LOG_GROUP:-}: keep them with \`cdk deploy --no-rollback\`; last output: ${output:-none}"
  local answer=0
  signal FAILURE "$STEP_ID: ${FAILURE_CODE:-exit $rc}" || answer=$?
  # "boot FAILED and not signalled" is what the stack's BootFailureAlarm counts (infra/constructs/observability.py).
  if ((answer == NOT_WAITING_RC)); then
    log "boot FAILED and not signalled: no stack operation waits for this host (one the group launched on its own, e.g. a replacement); it serves no cards"
  elif ((answer != 0)); then
    log "boot FAILED and not signalled: could not signal FAILURE to ${SIGNAL_RESOURCE:-?}; it serves no cards"
  fi
  exit "$rc"
}
trap on_error ERR

# A step: a short id for the signal's UniqueId, and a description for people.
step() {
  STEP_ID="$1"
  STEP="$2"
  log "step: $STEP"
}

# Fail the current step with a short code for the signal and a reason for the log.
fail() {
  FAILURE_CODE="$1"
  log "$2"
  false
}

# The configuration is data: demo.env is read line by line, each value checked against its pattern in
# demo-env.patterns, and never evaluated as shell (demo-env.sh is code from the host files). A bad file is a
# FAILURE at step `config`, signalled with the values that were valid (stack, resource and region come from
# the template; a forged build value cannot reach them).
# shellcheck source=infra/constructs/host/demo-env.sh
. "$HOST_DIR/demo-env.sh"
step config "read $CONF_DIR/demo.env: every KEY=VALUE of demo-env.patterns, each of its form"
demo_env_read "$CONF_DIR/demo.env" "$HOST_DIR/demo-env.patterns" ||
  fail "${DEMO_ENV_KEY:-demo.env}" "refused $DEMO_ENV_ERROR; nothing of it was run"

step dnf "install the Nitro CLI, Python 3.11, jq and the CloudWatch agent with dnf"
dnf install -y -q aws-nitro-enclaves-cli python3.11 python3.11-pip jq amazon-cloudwatch-agent

# The Nitro CLI RPM declares `Requires: docker` (SPECS/aws-nitro-enclaves-cli.spec in
# aws/aws-nitro-enclaves-cli), so dnf installed Docker's package too. Nothing here builds an image: mask the
# daemon and its socket (a link to /dev/null: no start, no socket activation; --now stops it were it running).
step docker-masked "mask docker.service and docker.socket (installed only as a dependency of the Nitro CLI RPM; never run here)"
systemctl mask --now docker.service docker.socket

step enclave-support "check enclave support: /dev/nitro_enclaves exists only on an instance launched with enclaves enabled"
test -c /dev/nitro_enclaves

step logs "ship logs to CloudWatch Logs group $CW_LOG_GROUP (journal exports and the CloudWatch agent)"
# Created here too: systemd may open StandardOutput=append: before it creates LogsDirectory=.
install -d -m 0755 /var/log/nitro-enclave-demo /var/lib/nitro-enclave-demo
install -m 0644 "$HOST_DIR/nitro-enclave-demo-journal@.service" /etc/systemd/system/
systemctl daemon-reload
for unit in "${JOURNAL_EXPORTS[@]}"; do
  systemctl enable --now "nitro-enclave-demo-journal@$unit.service"
done
"$CW_AGENT_CTL" -a fetch-config -m ec2 -s -c "file:$CONF_DIR/amazon-cloudwatch-agent.json"

step config "write /etc/nitro_enclaves/allocator.yaml ($ENCLAVE_MEMORY_MIB MiB, $ENCLAVE_CPU_COUNT vCPUs) and the vsock-proxy allowlist"
install -m 0644 "$CONF_DIR/allocator.yaml" /etc/nitro_enclaves/allocator.yaml
install -m 0644 "$CONF_DIR/vsock-proxy.yaml" /etc/nitro_enclaves/vsock-proxy.yaml
install -d -m 0755 /etc/systemd/system/nitro-enclaves-vsock-proxy.service.d
install -m 0644 "$HOST_DIR/vsock-proxy.override.conf" /etc/systemd/system/nitro-enclaves-vsock-proxy.service.d/override.conf
systemctl daemon-reload

step allocator "start nitro-enclaves-allocator (E27 or a hugepages error: not enough free memory for $ENCLAVE_MEMORY_MIB MiB)"
systemctl enable --now nitro-enclaves-allocator.service

step vsock-proxy "start nitro-enclaves-vsock-proxy (vsock port 8000 to kms.$AWS_REGION.amazonaws.com:443)"
systemctl enable --now nitro-enclaves-vsock-proxy.service

step venv "install the relay and producer in $VENV_DIR (python3.11, pip from PyPI)"
python3.11 -m venv "$VENV_DIR"
"$VENV_DIR/bin/python" -m pip install -q --upgrade pip
"$VENV_DIR/bin/python" -m pip install -q "$SRC_DIR"

step eif-download "download the EIF s3://$EIF_BUCKET/$EIF_KEY, version $EIF_VERSION (the one CodeBuild built and measured)"
aws s3api get-object --region "$AWS_REGION" --bucket "$EIF_BUCKET" --key "$EIF_KEY" --version-id "$EIF_VERSION" \
  "$ENCLAVE_EIF" >/dev/null

step eif-crc "check the EIF is intact: nitro-cli describe-eif must report CheckCRC true"
# describe-eif prints "CheckCRC": the EIF reader's CRC check of every section (EifDescribeInfo.crc_check in
# src/common/json_output.rs of aws/aws-nitro-enclaves-cli); false means a damaged or truncated file.
described=$(nitro-cli describe-eif --eif-path "$ENCLAVE_EIF")
if ! jq -e '.CheckCRC == true' >/dev/null <<<"$described"; then
  fail bad-crc "refusing to run $ENCLAVE_EIF: nitro-cli describe-eif reports CheckCRC $(jq -c .CheckCRC <<<"$described"), not true (a damaged or truncated file)"
fi

step pcr0 "check the EIF's PCR0 is the pinned $EXPECTED_PCR0 (nitro-cli describe-eif)"
pcr0=$(jq -er '.Measurements.PCR0 | ascii_downcase' <<<"$described")
if [[ "$pcr0" != "${EXPECTED_PCR0,,}" ]]; then
  fail wrong-pcr0 "refusing to run $ENCLAVE_EIF: its PCR0 is $pcr0, the pin is $EXPECTED_PCR0"
fi

step enclave "start nitro-enclave-demo-enclave.service: CID $ENCLAVE_CID, debug mode $ENCLAVE_DEBUG, ready when it answers a ping (journalctl -u nitro-enclave-demo-enclave; nitro-cli describe-enclaves)"
install -d -m 0755 "$HOME_DIR/bin"
install -m 0755 "$HOST_DIR/enclave-run.sh" "$HOME_DIR/bin/enclave-run.sh"
install -m 0755 "$HOST_DIR/nitro-demo.sh" /usr/local/bin/nitro-demo
install -m 0644 "$HOST_DIR/nitro-enclave-demo-enclave.service" "$HOST_DIR/nitro-enclave-demo-relay.service" \
  "$HOST_DIR/nitro-enclave-demo-logs.service" /etc/systemd/system/
systemctl daemon-reload
RELAY_INSTALLED=true
systemctl enable --now nitro-enclave-demo-logs.service
systemctl enable --now nitro-enclave-demo-enclave.service

step ping "health check: the enclave answers a ping over $ENCLAVE_URL (see nitro-cli describe-enclaves, journalctl -u nitro-enclave-demo-enclave)"
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
  fail no-answer "no answer to a ping over $ENCLAVE_URL after $HEALTH_ATTEMPTS attempts (see journalctl -u nitro-enclave-demo-enclave)"
fi

step canary "canary: one test card encrypted here under the deployment's encryption context, decrypted by this host's enclave through attested KMS Decrypt"
# Printed as it runs: its retries while KMS propagates a key policy change show in the log at once.
canary_out="$HOME_DIR/canary.out"
if ! "$VENV_DIR/bin/python" -m app.parent canary 2>&1 | tee "$canary_out"; then
  # The canary's last line is "canary failed: <code>: <KMS's answer>"; the code goes into the signal.
  code=$(sed -n 's/^canary failed: \([a-z_]*\):.*/\1/p' "$canary_out" | tail -n 1)
  fail "${code:-failed}" "canary failed on this host; KMS's answer is above"
fi

# The relay unit runs the canary again as its ExecStartPre, as at every later start (a reboot, `cloud-init
# clean --reboot`): this step's canary names the failure for the signal, the unit's holds on every start.
step relay "start $RELAY_UNIT: the canary passed, this host may take cards (the unit's ExecStartPre proves it again)"
systemctl enable --now "$RELAY_UNIT"
systemctl is-active --quiet "$RELAY_UNIT" || fail relay-down "relay service is not running (journalctl -u nitro-enclave-demo-relay)"

step doctor "doctor: known failure modes (informational; nitro-demo doctor runs it again)"
"$VENV_DIR/bin/python" -m app.ops doctor || log "doctor reported a failure above; the canary passed, continuing"

step signal "signal CloudFormation: this host's enclave decrypted the canary with PCR0 $pcr0"
answer=0
signal SUCCESS || answer=$?
if ((answer == NOT_WAITING_RC)); then
  log "SUCCESS not signalled: no stack operation waits for this host (one the group launched on its own, e.g. a replacement); its canary passed and it serves"
elif ((answer != 0)); then
  fail signal-refused "CloudFormation did not take the SUCCESS signal (its answer is above): stopping the relay"
fi
trap - ERR
log "done"

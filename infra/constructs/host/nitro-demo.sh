#!/bin/bash
# nitro-demo: one command on the parent instance, for people and for the stack's SSM documents.
# Installed by bootstrap.sh as /usr/local/bin/nitro-demo; reads the deployment from demo.env as data
# (demo-env.sh: every value checked against demo-env.patterns, nothing evaluated).
set -euo pipefail

readonly ENV_FILE="${NITRO_ENCLAVE_DEMO_ENV_FILE:-/etc/nitro-enclave-demo/demo.env}"
readonly PYTHON="${NITRO_ENCLAVE_DEMO_PYTHON:-/opt/nitro-enclave-demo/venv/bin/python}"
readonly HOST_DIR="${NITRO_ENCLAVE_DEMO_HOST_DIR:-/opt/nitro-enclave-demo/src/infra/constructs/host}"
readonly MAX_CARDS=1000

usage() {
  cat >&2 <<'END_OF_USAGE'
usage: nitro-demo status [--report-only]  health of every part (services, enclave, queues, recent errors)
       nitro-demo doctor [--report-only]  known failure modes: what happened and what to do
       nitro-demo send [COUNT]            send COUNT test cards (default 10, at most 1000) and print the results
       nitro-demo attest                  verify the enclave's attestation against the key policy itself
       nitro-demo logs [ARGS...]          the enclave's own log lines and the relay's (journalctl ARGS, e.g. -f)
END_OF_USAGE
  exit 2
}

# Session Manager logs in as ssm-user, which is neither root nor in group `ne`: nitro-cli (root or `ne` on
# /dev/nitro_enclaves), the journal and the enclave's state are root's. ssm-user has passwordless sudo.
if [[ "$(id -u)" -ne 0 ]]; then
  echo "nitro-demo needs root (nitro-cli, the journal, /etc/nitro-enclave-demo): run  sudo nitro-demo $*" >&2
  exit 1
fi

# shellcheck source=infra/constructs/host/demo-env.sh
. "$HOST_DIR/demo-env.sh"
if ! demo_env_read "$ENV_FILE" "$HOST_DIR/demo-env.patterns"; then
  echo "nitro-demo: refused $DEMO_ENV_ERROR" >&2
  exit 1
fi

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
  # --report-only: exit 0 when the tool ran, whatever it found (the SSM document's status)
  status | doctor)
    [[ "$*" == "" || "$*" == "--report-only" ]] || usage
    exec "$PYTHON" -m app.ops "$@" "$command"
    ;;
  send)
    count="${1:-10}"
    if [[ ! "$count" =~ ^[0-9]+$ ]] || ((count < 1 || count > MAX_CARDS)); then
      echo "nitro-demo send: COUNT must be a number from 1 to $MAX_CARDS, got '$count'" >&2
      exit 2
    fi
    exec "$PYTHON" -m app.producer --count "$count" --wait
    ;;
  attest) exec "$PYTHON" -m app.parent attest ;; # reads the pin from the key policy ($KMS_KEY_ID)
  logs) exec journalctl --no-pager -o cat -u nitro-enclave-demo-logs -u nitro-enclave-demo-relay "$@" ;;
  *) usage ;;
esac

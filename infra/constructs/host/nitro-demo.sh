#!/bin/bash
# nitro-demo: one command on the parent instance, for people and for the stack's SSM documents.
# Installed by bootstrap.sh as /usr/local/bin/nitro-demo; reads the deployment from demo.env.
set -euo pipefail

readonly ENV_FILE="${NITRO_ENCLAVE_DEMO_ENV_FILE:-/etc/nitro-enclave-demo/demo.env}"
readonly PYTHON="${NITRO_ENCLAVE_DEMO_PYTHON:-/opt/nitro-enclave-demo/venv/bin/python}"
readonly MAX_CARDS=1000

usage() {
  cat >&2 <<'END_OF_USAGE'
usage: nitro-demo status          health of every part (services, enclave, queues, recent errors)
       nitro-demo doctor          known failure modes: what happened and what to do
       nitro-demo send [COUNT]    send COUNT test cards (default 10, at most 1000) and print the results
       nitro-demo attest          verify the enclave's attestation against the key policy itself
       nitro-demo logs [ARGS...]  the enclave's own log lines and the relay's (journalctl ARGS, e.g. -f)
END_OF_USAGE
  exit 2
}

set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
  status) exec "$PYTHON" -m app.ops status ;;
  doctor) exec "$PYTHON" -m app.ops doctor ;;
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

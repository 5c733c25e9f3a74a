#!/bin/bash
# Runs the nitro-enclave-demo enclave for systemd: refuses an EIF that fails describe-eif's CRC check or whose
# PCR0 is not the pinned one (at every start, not only at boot: the file on disk could have changed since), starts
# it with the fixed CID, tells systemd it is ready once it answers a ping (so the relay starts after it),
# then stays in the foreground while it runs so that Restart=on-failure sees it stop.
set -Eeuo pipefail

readonly NAME=nitro-enclave-demo
readonly POLL_S=5
readonly READY_ATTEMPTS=40
readonly READY_INTERVAL_S=2
readonly PYTHON=/opt/nitro-enclave-demo/venv/bin/python
# systemd's RestartPreventExitStatus: a wrong image must not be retried forever.
readonly EXIT_WRONG_IMAGE=3

: "${ENCLAVE_EIF:?}" "${ENCLAVE_CPU_COUNT:?}" "${ENCLAVE_MEMORY_MIB:?}" "${ENCLAVE_CID:?}" "${ENCLAVE_URL:?}"
: "${EXPECTED_PCR0:?the pinned PCR0 must be set (demo.env)}"

# A describe-eif that fails (the tool itself, not the image) exits 1, which systemd retries; only an image
# that is not the pinned one gets EXIT_WRONG_IMAGE, which it does not.
described_rc=0
described=$(nitro-cli describe-eif --eif-path "$ENCLAVE_EIF") || described_rc=$?
if ((described_rc != 0)); then
  echo "cannot check $ENCLAVE_EIF: nitro-cli describe-eif failed (exit $described_rc)" >&2
  exit 1
fi
# "CheckCRC": the EIF reader's CRC check (EifDescribeInfo.crc_check, src/common/json_output.rs of
# aws/aws-nitro-enclaves-cli); anything but true is a damaged or truncated file.
if ! jq -e '.CheckCRC == true' >/dev/null 2>&1 <<<"$described"; then
  echo "refusing to start $ENCLAVE_EIF: nitro-cli describe-eif does not report CheckCRC true (damaged or truncated)" >&2
  exit "$EXIT_WRONG_IMAGE"
fi
actual=$(jq -er '.Measurements.PCR0 | ascii_downcase' <<<"$described") || actual="(unreadable)"
if [[ "$actual" != "${EXPECTED_PCR0,,}" ]]; then
  echo "refusing to start $ENCLAVE_EIF: its PCR0 $actual is not the pinned $EXPECTED_PCR0" >&2
  exit "$EXIT_WRONG_IMAGE"
fi

args=(--enclave-name "$NAME" --eif-path "$ENCLAVE_EIF" --cpu-count "$ENCLAVE_CPU_COUNT"
  --memory "$ENCLAVE_MEMORY_MIB" --enclave-cid "$ENCLAVE_CID")
if [[ "${ENCLAVE_DEBUG:-false}" == true ]]; then
  echo "DEBUG MODE: the enclave console is readable and it attests all-zero PCRs" >&2
  args+=(--debug-mode)
fi

nitro-cli terminate-enclave --enclave-name "$NAME" >/dev/null 2>&1 || true
nitro-cli run-enclave "${args[@]}"

ready=false
for ((attempt = 1; attempt <= READY_ATTEMPTS; attempt++)); do
  if "$PYTHON" -m app.parent ping >/dev/null 2>&1; then
    ready=true
    break
  fi
  sleep "$READY_INTERVAL_S"
done
if [[ "$ready" != true ]]; then
  echo "enclave $NAME started but does not answer a ping over $ENCLAVE_URL" >&2
  nitro-cli terminate-enclave --enclave-name "$NAME" >/dev/null 2>&1 || true
  exit 1
fi
systemd-notify --ready

running() {
  nitro-cli describe-enclaves |
    jq -e --arg name "$NAME" 'any(.[]; .EnclaveName == $name and .State == "RUNNING")' >/dev/null
}
while running; do
  sleep "$POLL_S"
done
echo "enclave $NAME is no longer running" >&2
exit 1

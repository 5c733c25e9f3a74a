#!/bin/bash
# First boot of the nitro-enclave-demo parent, rendered by CloudFormation (Fn::Sub).
# Writes the configuration files, fetches the project's code (an S3 asset) and hands over to bootstrap.sh.
# Any failure is signalled to the stack's wait condition with its reason, so `cdk deploy` stops and says why.
set -Eeuo pipefail

SIGNAL_URL='${SignalUrl}'
export SIGNAL_URL
readonly CONF_DIR=/etc/nitro-enclave-demo
readonly HOME_DIR=/opt/nitro-enclave-demo
readonly CODE_ZIP=/tmp/nitro-enclave-demo-code.zip

signal_failure() {
  local reason="$1"
  echo "nitro-enclave-demo user data FAILED: $reason" >&2
  # A wait condition handle is a presigned URL: signalling needs no credentials.
  python3 -c 'import json, sys; print(json.dumps({"Status": "FAILURE", "Reason": sys.argv[1][:3900], "UniqueId": "pcr0", "Data": "failed"}))' "$reason" |
    curl -sS --retry 5 -X PUT -H 'Content-Type:' --data-binary @- "$SIGNAL_URL" || true
  exit 1
}
trap 'signal_failure "user data failed at line $LINENO; see /var/log/cloud-init-output.log"' ERR

install -d -m 0755 "$CONF_DIR" "$HOME_DIR"

cat >"$CONF_DIR/demo.env" <<'END_OF_DEMO_ENV'
${DemoEnv}
END_OF_DEMO_ENV

cat >"$CONF_DIR/allocator.yaml" <<'END_OF_ALLOCATOR_YAML'
${AllocatorYaml}
END_OF_ALLOCATOR_YAML

cat >"$CONF_DIR/vsock-proxy.yaml" <<'END_OF_VSOCK_PROXY_YAML'
${VsockProxyYaml}
END_OF_VSOCK_PROXY_YAML

cat >"$CONF_DIR/amazon-cloudwatch-agent.json" <<'END_OF_CLOUDWATCH_AGENT_JSON'
${CloudWatchAgentJson}
END_OF_CLOUDWATCH_AGENT_JSON

aws s3 cp --only-show-errors --region '${AWS::Region}' 's3://${CodeBucket}/${CodeKey}' "$CODE_ZIP" ||
  signal_failure "could not download the project's code from s3://${CodeBucket}/${CodeKey}"
rm -rf "$HOME_DIR/src"
python3 -m zipfile -e "$CODE_ZIP" "$HOME_DIR/src" ||
  signal_failure "could not unpack the project's code into $HOME_DIR/src"

trap - ERR
exec /bin/bash "$HOME_DIR/src/infra/constructs/host/bootstrap.sh"

#!/bin/bash
# First boot of a nitro-enclave-demo host, rendered by CloudFormation (Fn::Sub) into the launch template.
# Writes the configuration files, fetches the project's code (an S3 asset) and hands over to bootstrap.sh.
# A failure here signals FAILURE to the group's creation policy or rolling update (SignalResource, with the
# role's own credentials), so `cdk deploy` stops at once and the stack events name the host and the step.
set -Eeuo pipefail

readonly CONF_DIR=/etc/nitro-enclave-demo
readonly HOME_DIR=/opt/nitro-enclave-demo
readonly CODE_ZIP=/tmp/nitro-enclave-demo-code.zip
readonly IMDS=http://169.254.169.254/latest

# SignalResource has no reason field: the UniqueId (at most 64 characters) carries "<instance-id> <step>".
signal_failure() {
  local step="$1" reason="$2" token instance_id
  echo "nitro-enclave-demo user data FAILED: $step: $reason" >&2
  token=$(curl -sS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/api/token") || true
  instance_id=$(curl -sS -H "X-aws-ec2-metadata-token: $token" "$IMDS/meta-data/instance-id") || true
  local signal=(aws cloudformation signal-resource --region '${AWS::Region}' --stack-name '${AWS::StackName}'
    --logical-resource-id '${SignalResource}' --status FAILURE)
  # Should CloudFormation ever refuse a UniqueId that is not a bare instance id, the bare id still fails fast.
  "${!signal[@]}" --unique-id "$(printf '%s %s' "$instance_id" "$step" | cut -c1-64)" ||
    "${!signal[@]}" --unique-id "$instance_id" || true
  exit 1
}
trap 'signal_failure user-data "failed at line $LINENO; see /var/log/cloud-init-output.log"' ERR

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
  signal_failure code-download "could not download the project's code from s3://${CodeBucket}/${CodeKey}"
rm -rf "$HOME_DIR/src"
python3 -m zipfile -e "$CODE_ZIP" "$HOME_DIR/src" ||
  signal_failure code-unpack "could not unpack the project's code into $HOME_DIR/src"

trap - ERR
exec /bin/bash "$HOME_DIR/src/infra/constructs/host/bootstrap.sh"

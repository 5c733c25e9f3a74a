#!/bin/bash
# First boot of a nitro-enclave-demo host, rendered by CloudFormation (Fn::Sub) into the launch template.
# Writes the configuration files, installs the host bundle the enclave image build wrote (exactly the object
# version the build resource named, refused unless its SHA-256 is the one the build recorded: nothing from it
# is unpacked or run before that check) and hands over to bootstrap.sh from it. The bundle's key, version and
# SHA-256 are the build resource's attributes, each checked by its handler against a pattern that admits no
# quote or whitespace (infra/build/handler/enclave_build.py), so they stay literal in '...' below.
# A failure here signals FAILURE to the group's creation policy or rolling update (SignalResource, with the
# role's own credentials), so `cdk deploy` stops at once and the stack events name the host and the step.
set -Eeuo pipefail

readonly CONF_DIR=/etc/nitro-enclave-demo
readonly HOME_DIR=/opt/nitro-enclave-demo
readonly BUNDLE_SHA256='${BundleSha256}'
readonly IMDS=http://169.254.169.254/latest

# SignalResource has no reason field: the UniqueId (at most 64 characters) carries "<instance-id> <step>"
# (for the bundle, "<instance-id> bundle: <code>", as bootstrap.sh names its failures).
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

bundle_dir=$(mktemp -d)
bundle="$bundle_dir/host-bundle.tar.gz"
aws s3api get-object --region '${AWS::Region}' --bucket '${BundleBucket}' --key '${BundleKey}' \
  --version-id '${BundleVersion}' "$bundle" >/dev/null ||
  signal_failure 'bundle: bundle-download' "could not download s3://${BundleBucket}/${BundleKey} version ${BundleVersion}"
actual=$(sha256sum "$bundle" | cut -d ' ' -f 1)
if [[ "$actual" != "$BUNDLE_SHA256" ]]; then
  rm -rf "$bundle_dir"
  signal_failure 'bundle: bundle-checksum' "refused the host bundle s3://${BundleBucket}/${BundleKey} version ${BundleVersion}: its SHA-256 is $actual, the build recorded $BUNDLE_SHA256; nothing of it was unpacked or run"
fi
rm -rf "$HOME_DIR/src"
install -d -m 0755 "$HOME_DIR/src"
tar --extract --gzip --no-same-owner --file "$bundle" --directory "$HOME_DIR/src" ||
  signal_failure 'bundle: bundle-unpack' "could not unpack the host bundle into $HOME_DIR/src"
rm -rf "$bundle_dir"

trap - ERR
exec /bin/bash "$HOME_DIR/src/infra/constructs/host/bootstrap.sh"

#!/bin/sh
# deploy/parent: the socat vsock bridges' systemd units load (systemd-analyze
# verify, with the example environment file), and each names the ports of
# deploy/parent/attest-bridge.env it bridges.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${AT_SRCDIR:=$(cd "$here/../.." && pwd)}"
dir="$AT_SRCDIR/deploy/parent"
command -v systemd-analyze >/dev/null || { echo "skip: systemd-analyze is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$dir/attest-bridge.env" "$tmp/env"
for u in "$dir"/attest-bridge-*.service; do
    sed "s|/etc/default/attest-bridge|$tmp/env|" "$u" >"$tmp/$(basename "$u")"
done
systemd-analyze verify "$tmp"/attest-bridge-*.service
grep -q 'VSOCK-CONNECT:${ENCLAVE_CID}:${AGENT_VSOCK_PORT}' "$tmp/attest-bridge-agent.service"
grep -q 'VSOCK-LISTEN:${VERIFIER_VSOCK_PORT}' "$tmp/attest-bridge-verifier.service"
grep -q 'VSOCK-LISTEN:${MODEL_VSOCK_PORT}' "$tmp/attest-bridge-model.service"
echo "ok   deploy/parent units verify"

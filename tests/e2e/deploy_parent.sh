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
grep -q 'VSOCK-LISTEN:${WEIGHTS_VSOCK_PORT}' "$tmp/attest-bridge-weights.service"
grep -q '^WEIGHTS_VSOCK_PORT=' "$tmp/env"
# The enclave's entrypoint fetches from the weights port (init.sh's default).
grep -q "VSOCK-CONNECT:3:$(sed -n 's/^WEIGHTS_VSOCK_PORT=//p' "$tmp/env")" "$AT_SRCDIR/deploy/enclave/init.sh"
if command -v shellcheck >/dev/null; then
    shellcheck -s sh "$AT_SRCDIR/deploy/enclave/init.sh"
    shellcheck "$AT_SRCDIR/deploy/attestable-ami/kiwi/config.sh"
fi
echo "ok   deploy/parent units verify"

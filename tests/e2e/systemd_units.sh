#!/bin/bash
# The systemd units (deploy/systemd) pass `systemd-analyze verify` with this
# build's binaries in ExecStart, and the example configurations they name
# are read by the binaries (unknown keys are refused).
set -euo pipefail
B=${AT_BUILD:?}
S=${AT_SRCDIR:?}
if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/etc/attest" "$tmp/units"
ln -s "$B/verifier/attest-verifier" "$B/gateway/attest-gateway" "$B/agent/attest-agent" "$tmp/bin/"
fail=0
for u in verifier gateway agent; do
    sed -e "s|@bindir@|$tmp/bin|g" -e "s|@sysconfdir@|$tmp/etc|g" -e "s|@docdir@|$tmp/doc|g" \
        "$S/deploy/systemd/attest-$u.service.in" >"$tmp/units/attest-$u.service"
    cp "$S/deploy/systemd/$u.json.example" "$tmp/etc/attest/$u.json"
    if out=$(systemd-analyze verify --man=no "$tmp/units/attest-$u.service" 2>&1) && [ -z "$out" ]; then
        echo "ok   systemd-analyze verify attest-$u.service"
    else
        echo "FAIL systemd-analyze verify attest-$u.service:"
        echo "$out"
        fail=1
    fi
    for k in NoNewPrivileges=yes ProtectSystem=strict DynamicUser=yes CapabilityBoundingSet= SystemCallFilter=@system-service; do
        grep -qx "$k" "$tmp/units/attest-$u.service" || { echo "FAIL attest-$u.service lacks $k"; fail=1; }
    done
done
grep -qx "StateDirectory=attest-verifier" "$tmp/units/attest-verifier.service" || { echo "FAIL no StateDirectory"; fail=1; }

# The example configurations parse (flags after them win; --help stops before any work).
check() { # what, expected status, command...
    local what=$1 want=$2
    shift 2
    local rc=0
    "$@" >"$tmp/out" 2>&1 || rc=$?
    if [ "$rc" = "$want" ]; then echo "ok   $what"; else echo "FAIL $what (status $rc)"; cat "$tmp/out"; fail=1; fi
}
check "verifier.json.example is read" 0 "$B/verifier/attest-verifier" --config "$tmp/etc/attest/verifier.json" --help
check "gateway.json.example is read" 0 "$B/gateway/attest-gateway" --config "$tmp/etc/attest/gateway.json" --help
"$B/ctl/attestctl" sim init "$tmp/pki" >/dev/null
check "agent.json.example is read (with the simulator)" 0 "$B/agent/attest-agent" --config "$tmp/etc/attest/agent.json" \
    --attester sim --sim-pki "$tmp/pki" --print-pcrs
echo '{"listen": "127.0.0.1:0", "bogus": 1}' >"$tmp/bad.json"
check "agent --config with an unknown key refused" 2 "$B/agent/attest-agent" --config "$tmp/bad.json" --print-pcrs
grep -q 'unknown key "bogus"' "$tmp/out" || { echo "FAIL the unknown key is not named"; fail=1; }
check "gateway --config with an unknown key refused" 2 "$B/gateway/attest-gateway" --config "$tmp/bad.json"
echo '{"upstream": "http://192.0.2.1:80"}' >"$tmp/remote.json"
check "flags in --config are checked like flags (remote upstream refused)" 2 "$B/agent/attest-agent" \
    --config "$tmp/remote.json" --attester sim --sim-pki "$tmp/pki" --policy p --print-pcrs
check "a command-line flag wins over --config" 0 "$B/agent/attest-agent" --config "$tmp/remote.json" \
    --upstream http://127.0.0.1:9 --attester sim --sim-pki "$tmp/pki" --policy p --print-pcrs
exit $fail

#!/usr/bin/env bash
# demo: what attest does, end to end, on this machine (run by
# `scripts/quickstart demo` after the build). Nothing here needs AWS:
# genuine AWS documents from tests/data are checked offline, and the
# simulator plays the Nitro hypervisor for the live flow.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${AT_BUILD:-$top/build}
ctl="$build/ctl/attestctl"
work=$(mktemp -d /tmp/attest-demo-XXXXXX)
vpid=
pids=()
cleanup() {
    for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "$vpid" ]; then kill "$vpid" 2>/dev/null || true; wait "$vpid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { python3 -c "import json,sys
for line in sys.stdin:
    d = json.loads(line)
    keys = sys.argv[1].split(',')
    print('  ' + ', '.join(f'{k}={json.dumps(d.get(k))}' for k in keys))" "$1"; }

step "1. A genuine AWS NitroTPM attestation document, checked offline"
doc="$top/tests/data/nitro/vaportpm_tpm_20260201.cbor"
echo "  $doc ($(stat -c %s "$doc") bytes): COSE_Sign1 ES384 signature, certificate chain to the"
echo "  pinned AWS Nitro root G1, payload rules. At its own timestamp:"
"$ctl" verify --at-document-time "$doc" | show valid,format,module_id,timestamp,chain_length,aws_root
echo "  ...and now, hours after its 3-hour leaf certificate expired:"
"$ctl" verify "$doc" | python3 -c "import json,sys; d=json.load(sys.stdin); print('  valid=%s code=%s: %s' % (d['valid'], d['error']['code'], d['error']['message']))" || true

step "2. The simulator plays the Nitro hypervisor (a test PKI in AWS's shape)"
"$ctl" sim init "$work/pki" 2>/dev/null
echo "  root -> regional -> zonal -> instance CA -> leaf in $work/pki (never trusted unless pinned)"
"$ctl" sim doc --pki "$work/pki" --nonce 00112233 -o "$work/sim.cbor"
"$ctl" verify --root "$work/pki/root.pem" --nonce 00112233 "$work/sim.cbor" | show valid,format,nonce,chain_length,aws_root

step "3. The verifier: policies in SQLite, nonces, sessions, signed results"
"$build/verifier/attest-verifier" --listen 127.0.0.1:0 --db "$work/attest.db" \
    --root "$work/pki/root.pem" --port-file "$work/port" 2>"$work/verifier.log" &
vpid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")"
export ATTEST_VERIFIER="$url"
echo "  attest-verifier on $url, database $work/attest.db"
owner=$("$ctl" token create --db "$work/attest.db" --role owner)
auditor=$("$ctl" token create --db "$work/attest.db" --role auditor)
"$ctl" sim pcrs --pki "$work/pki" >"$work/policy.json"
echo "  the model owner registers the golden PCRs as policy 'llm':"
ATTEST_TOKEN=$owner "$ctl" policy put llm "$work/policy.json" | python3 -c "import json,sys; d=json.load(sys.stdin); print('  policy %s version %s sha256 %s' % (d['name'], d['version'], d['sha256'][:16]))"

step "4. An agent attests: challenge -> document(nonce, its HPKE key) -> session"
"$ctl" hpke keygen -o "$work/keys.txt" >"$work/key-config.b64"
echo "  the agent's HPKE key configuration (it goes into the document's public_key): $(cut -c1-40 "$work/key-config.b64")..."
# (an instance of its own: the agent of step 7 is another one, at another endpoint)
"$ctl" attest --policy llm --pki "$work/pki" --key-file "$work/keys.txt" --state-file "$work/state.json" \
    --endpoint http://127.0.0.1:8080 --module-id i-0demo00000000000-enc0demo000000000 >"$work/attest.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); s=d['session']; print('  status=%s session=%s expires=%s' % (d['status'], s['id'], s['expires_at'])); print('  the session key came back sealed to the attested key and was opened inside the \"enclave\"')" "$work/attest.json"
token=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['token'])" "$work/attest.json")
echo "  a relying party checks the signed attestation result (EAR, JWS ES256) against the JWKS:"
"$ctl" ear verify --jwks "$url/.well-known/jwks.json" "$token" | python3 -c "import json,sys; d=json.load(sys.stdin); c=d['claims']; s=list(c['submods'].values())[0]; print('  valid=%s status=%s policy=%s' % (d['valid'], s['ear.status'], s['ear.appraisal-policy-id']))"

step "5. A sealed secret (the model's data key) goes only to the attested environment"
head -c 32 /dev/urandom >"$work/model.key"
ATTEST_TOKEN=$owner "$ctl" secret put model-key --policy llm --value-file "$work/model.key" >/dev/null
"$ctl" secret release model-key --state-file "$work/state.json" -o "$work/released.key"
cmp -s "$work/model.key" "$work/released.key" && echo "  released, sealed to the session's key, opened by the agent: identical bytes"
echo "  a document with a different PCR0 is refused, and the refusal says why:"
"$ctl" sim doc --pki "$work/pki" --pcr 0=$(printf 'ab%.0s' $(seq 48)) -o "$work/bad.cbor"
python3 - "$url" "$work/bad.cbor" <<'PY'
import base64, json, sys, urllib.request
url, path = sys.argv[1], sys.argv[2]
body = json.dumps({"evidence": base64.b64encode(open(path, "rb").read()).decode(), "policy": "llm"}).encode()
try:
    urllib.request.urlopen(urllib.request.Request(url + "/v1/attestations", data=body, method="POST"))
except urllib.error.HTTPError as e:
    err = json.loads(e.read())["error"]
    print(f"  HTTP {e.code} {err['code']}: {err['message'][:150]}...")
PY

step "6. The security team checks the tamper-evident audit log"
ATTEST_TOKEN=$auditor "$ctl" audit query --limit 100 | python3 -c "import json,sys
rows=[json.loads(l) for l in sys.stdin]
for r in rows[-5:]: print('  #%d %s %s %s %s' % (r['id'], r['actor'], r['action'], r['outcome'], r['code'] or ''))"
ATTEST_TOKEN=$auditor "$ctl" audit verify | python3 -c "import json,sys; d=json.load(sys.stdin); print('  hash chain ok=%s over %d entries' % (d['ok'], d['entries']))"

step "7. The whole path of a prompt: gateway -> sealed (OHTTP/HPKE) -> agent -> LLM"
wait_port() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; echo "no port in $1" >&2; return 1; }
if [ -n "${LLM_URL:-}" ]; then
    llm=$LLM_URL
    echo "  LLM: $llm (LLM_URL)"
else
    python3 "$top/scripts/llm-standin.py" --port-file "$work/llm.port" & pids+=($!)
    wait_port "$work/llm.port"
    llm="http://127.0.0.1:$(cat "$work/llm.port")"
    echo "  LLM: the OpenAI-compatible stand-in on $llm (set LLM_URL to use a real one)"
fi
agent_args=(--attester sim --sim-pki "$work/pki" --policy chat --verifier "$url" --listen 127.0.0.1:0 --upstream "$llm")
"$build/agent/attest-agent" "${agent_args[@]}" --print-pcrs >"$work/chat-policy.json"
ATTEST_TOKEN=$owner "$ctl" policy put chat "$work/chat-policy.json" >/dev/null
echo "  the owner registered what the agent attests (attest-agent --print-pcrs) as policy 'chat'"
"$ctl" model seal --in "$work/model.key" --out "$work/weights.sealed" --key-out "$work/weights.key"
ATTEST_TOKEN=$owner "$ctl" secret put weights-key --policy chat --value-file "$work/weights.key" >/dev/null
"$build/agent/attest-agent" "${agent_args[@]}" --port-file "$work/agent.port" \
    --model-sealed "$work/weights.sealed" --model-secret weights-key --model-out "$work/weights.out" \
    2>"$work/agent.log" & pids+=($!)
wait_port "$work/agent.port"
"$ctl" token create --db "$work/attest.db" --role gateway >"$work/gateway.token"
"$build/gateway/attest-gateway" --verifier "$url" --policy chat --listen 127.0.0.1:0 \
    --token-file "$work/gateway.token" --port-file "$work/gateway.port" 2>"$work/gateway.log" & pids+=($!)
wait_port "$work/gateway.port"
gw="http://127.0.0.1:$(cat "$work/gateway.port")"
for _ in $(seq 100); do
    curl -s "$gw/v1/gateway/instances" | grep -q '"session"' &&
        curl -s "http://127.0.0.1:$(cat "$work/agent.port")/v1/status" | grep -q '"model_ready":true' && break
    sleep 0.1
done
echo "  attest-agent attested, opened its sealed model ($(cmp -s "$work/model.key" "$work/weights.out" && echo identical || echo NOT YET)), gateway on $gw"
echo "  curl $gw/v1/chat/completions:"
curl -s "$gw/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"model":"any","messages":[{"role":"user","content":"Is my prompt private?"}]}' |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('  assistant:', d['choices'][0]['message']['content'])"
echo "  the same with \"stream\": true (server-sent events, each sealed chunk by chunk):"
curl -sN "$gw/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"stream":true,"messages":[{"role":"user","content":"stream it"}]}' |
    python3 -c "import json,sys
out=''
for l in sys.stdin:
    if l.startswith('data: ') and '[DONE]' not in l: out+=json.loads(l[6:])['choices'][0]['delta']['content']
print('  assistant (streamed):', out)"
echo
echo "Done. See README.md for running each binary for real (Nitro Enclave, NitroTPM)."

#!/usr/bin/env bash
# e2e: `attestctl ohttp request` against the test OHTTP gateway
# (tests/e2e/ohttp_echo_server): key configuration by URL and by file (raw
# and base64), whole and chunked exchanges, inner status codes, an unknown
# key id, a truncated stream, and answers printed while they still stream.
# Run by `make check` from the top build directory; picks its own port.
set -euo pipefail

build=${AT_TEST_BUILDDIR:-$(pwd)}
ctl=$build/ctl/attestctl
srv=$build/tests/e2e/ohttp_echo_server
for b in "$ctl" "$srv"; do
    [ -x "$b" ] || { echo "missing $b (run from the build directory)" >&2; exit 99; }
done

# In sanitizer builds a report must never pass for an expected exit code
# (this script expects 0, 1 and 2): give reports their own.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:abort_on_error=1:print_stacktrace=1"

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
expect_in() { grep -qF -- "$1" "$2" || { echo "--- $2:" >&2; cat "$2" >&2; fail "expected '$1' in $(basename "$2")"; }; }

"$ctl" hpke keygen -o "$tmp/keys" --key-id 7 >"$tmp/config.b64"
[ "$(stat -c %a "$tmp/keys")" = 600 ] || fail "key file mode is not 0600"
base64 -d "$tmp/config.b64" >"$tmp/config.bin"
[ "$(head -c1 "$tmp/config.bin" | od -An -tu1 | tr -d ' ')" = 7 ] || fail "key id 7 not in the config"
"$ctl" hpke keygen -o "$tmp/other" --key-id 9 >"$tmp/other.b64"

"$srv" --keys "$tmp/keys" --port-file "$tmp/port" 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
[ -s "$tmp/port" ] || fail "the test gateway did not start"
base=http://127.0.0.1:$(cat "$tmp/port")
req() { "$ctl" ohttp request --url "$base/v1/ohttp" "$@"; }

echo "1. whole exchange, key configuration from the gateway's URL"
req --key-config "$base/v1/key-config" --data '{"model":"m","messages":[]}' \
    --header 'X-Trace: abc' >"$tmp/out" 2>"$tmp/err"
expect_in '"path":"/v1/chat/completions"' "$tmp/out"
expect_in '"method":"POST"' "$tmp/out"
expect_in '"body":"{\"model\":\"m\",\"messages\":[]}"' "$tmp/out"
expect_in '"content-type":"application/json"' "$tmp/out"
expect_in '"x-trace":"abc"' "$tmp/out"
expect_in 'HTTP 200' "$tmp/err"

echo "2. key configuration from files: raw bytes, base64 text; --data @FILE and -"
printf '{"from":"file"}' >"$tmp/body.json"
req --key-config "$tmp/config.bin" --data @"$tmp/body.json" >"$tmp/out" 2>"$tmp/err"
expect_in '"body":"{\"from\":\"file\"}"' "$tmp/out"
echo 'stdin body' | req --key-config "$tmp/config.b64" --data - --path /v1/completions \
    --header 'Content-Type: text/plain' >"$tmp/out" 2>"$tmp/err"
expect_in '"path":"/v1/completions"' "$tmp/out"
expect_in '"content-type":"text/plain"' "$tmp/out"
expect_in '"body":"stdin body\n"' "$tmp/out"

echo "3. an inner non-2xx status exits 1"
rc=0
req --key-config "$tmp/config.bin" --method GET --path /status/404 >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] || fail "inner 404: exit $rc, want 1"
expect_in 'HTTP 404' "$tmp/err"

echo "4. a key the gateway does not hold: refused, exit 2"
rc=0
req --key-config "$tmp/other.b64" >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 2 ] || fail "unknown key: exit $rc, want 2"
expect_in 'HTTP 400' "$tmp/err"
expect_in 'unknown_key_id' "$tmp/err"

echo "5. usage errors exit 2"
rc=0
"$ctl" ohttp request --url "$base/v1/ohttp" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "missing --key-config: exit $rc"
rc=0
req --key-config "$tmp/nonexistent" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "missing key config file: exit $rc"

echo "6. chunked exchange: one event per chunk"
printf 'alpha\nbeta\n' | req --key-config "$base/v1/key-config" --chunked --data - \
    >"$tmp/out" 2>"$tmp/err"
printf 'data: POST /v1/chat/completions\n\ndata: alpha\n\ndata: beta\n\ndata: [DONE]\n\n' >"$tmp/want"
cmp -s "$tmp/out" "$tmp/want" || { diff "$tmp/want" "$tmp/out" >&2 || true; fail "chunked output"; }
expect_in 'HTTP 200' "$tmp/err"

echo "7. chunked stream cut before its final chunk: detected, exit 2"
rc=0
req --key-config "$tmp/config.bin" --chunked --path /truncate >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" = 2 ] || fail "truncated stream: exit $rc, want 2"
expect_in 'truncated' "$tmp/err"
expect_in 'data: [DONE]' "$tmp/out" # what did arrive authenticated was shown

echo "8. chunks are printed as they arrive, before the stream ends"
req --key-config "$tmp/config.bin" --chunked --path /slow --data 'early' >"$tmp/slow.out" 2>"$tmp/slow.err" &
cpid=$!
seen=no
for _ in $(seq 50); do
    if grep -q 'data: early' "$tmp/slow.out" 2>/dev/null; then seen=yes; break; fi
    sleep 0.05
done
[ "$seen" = yes ] || fail "no chunk printed within 2.5 s"
kill -0 "$cpid" 2>/dev/null || fail "the client had already finished: nothing was streamed"
wait "$cpid" || fail "slow stream: exit $?"
expect_in 'data: [DONE]' "$tmp/slow.out"

echo "9. the gateway refuses a non-OHTTP body"
rc=0
curl -s -o "$tmp/out" -w '%{http_code}' -H 'Content-Type: text/plain' --data x "$base/v1/ohttp" >"$tmp/code" || rc=$?
[ "$(cat "$tmp/code")" = 415 ] || fail "plain body: HTTP $(cat "$tmp/code")"

echo "10. the gateway shuts down cleanly (and, in sanitizer builds, reports nothing)"
kill "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || { cat "$tmp/server.log" >&2; fail "gateway exit $rc"; }
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$tmp/server.log"; then
    cat "$tmp/server.log" >&2
    fail "sanitizer report from the gateway"
fi

echo "ok"

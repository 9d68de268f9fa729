#!/bin/sh
# End-to-end tests of `attestctl verify` and `attestctl sim` through the real
# binary: every sim doc option, every verify option, JSON fields, exit codes
# (0 valid, 1 invalid, 2 usage/IO), several documents per call, and the
# genuine AWS documents in tests/data/nitro (valid at their own time, expired
# now), and the documents AWS's rules forbid in tests/data/conformance. Needs
# python3 for JSON; runs from any build dir via AT_BUILD/AT_SRCDIR.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
: "${AT_SRCDIR:=$(cd "$here/../.." && pwd)}"
: "${AT_BUILD:=$AT_SRCDIR/build}"
CTL="$AT_BUILD/ctl/attestctl"
DATA="$AT_SRCDIR/tests/data/nitro"
[ -x "$CTL" ] || { echo "attestctl not found at $CTL (set AT_BUILD)" >&2; exit 99; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/attest-e2e.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
n_ok=0

fail() { echo "FAIL: $*" >&2; [ -s "$T/err" ] && sed 's/^/  stderr: /' "$T/err" >&2; [ -s "$T/out" ] && sed 's/^/  stdout: /' "$T/out" >&2; exit 1; }

# run WANT_EXIT CMD...: stdout in $T/out, stderr in $T/err
run() {
    want=$1; shift
    set +e; "$@" >"$T/out" 2>"$T/err"; rc=$?; set -e
    [ "$rc" -eq "$want" ] || fail "exit $rc, expected $want: $*"
    n_ok=$((n_ok + 1))
}

# check LINE EXPR: python EXPR over j = the JSON object on stdout line LINE
# (1-based); extra names: b64(bytes), sha384(bytes), data(path)
check() {
    python3 - "$T/out" "$1" "$2" <<'PY' || fail "check line $1: $2"
import base64, hashlib, json, sys
lines = open(sys.argv[1]).read().splitlines()
j = json.loads(lines[int(sys.argv[2]) - 1])
b64 = lambda b: base64.b64encode(b).decode()
sha384 = lambda b: hashlib.sha384(b).digest()
data = lambda p: open(p, 'rb').read()
ok = eval(sys.argv[3])
if not ok:
    print(json.dumps(j, indent=1)[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
    n_ok=$((n_ok + 1))
}

lines() { [ "$(wc -l <"$T/out")" -eq "$1" ] || fail "expected $1 output lines, got $(wc -l <"$T/out")"; }

PKI="$T/pki"
run 0 "$CTL" sim init "$PKI"
[ -s "$PKI/root.pem" ] || fail "no root.pem"
ROOT="$PKI/root.pem"

# ---- minting and verifying, both formats and every encoding option -------
run 0 "$CTL" sim doc --pki "$PKI" -o "$T/enc.cbor"
run 0 "$CTL" verify --root "$ROOT" "$T/enc.cbor"
lines 1
check 1 'j["valid"] is True and j["error"] is None and j["format"] == "nitro-enclave" and j["digest"] == "SHA384"'
check 1 'j["chain_length"] == 5 and len(j["pcrs"]) == 16 and j["cose_tagged"] is False and j["payload_map"] == "indefinite"'
check 1 'j["nonce"] is None and j["user_data"] is None and j["public_key"] is None and j["aws_root"] is False'
check 1 '"-enc" in j["module_id"] and j["certificate"]["subject"].startswith("CN=") and j["certificate"]["not_after"].endswith("Z")'

run 0 "$CTL" sim doc --pki "$PKI" --format nitro-tpm --tagged --definite-map -o "$T/tpm.cbor"
[ "$(head -c1 "$T/tpm.cbor" | od -An -tx1 | tr -d ' ')" = d2 ] || fail "--tagged did not write tag 18"
run 0 "$CTL" verify --root "$ROOT" --format nitro-tpm "$T/tpm.cbor"
check 1 'j["valid"] and j["format"] == "nitro-tpm" and j["cose_tagged"] is True and j["payload_map"] == "definite"'
check 1 'len(j["pcrs"]) == 24 and all(j["pcrs"][str(i)] == "ff" * 48 for i in range(17, 23)) and j["module_id"].endswith("-tpm0000000000000000")'
run 0 "$CTL" verify --root "$ROOT" --format auto "$T/tpm.cbor"
run 1 "$CTL" verify --root "$ROOT" --format nitro-enclave "$T/tpm.cbor"
check 1 'j["valid"] is False and j["error"]["code"] == "format_mismatch"'

# --pcr, --measure (on top of an explicit value and of a default), --nonce,
# --user-data, --public-key, --module-id
printf 'model weights v1\n' >"$T/model.bin"
printf 'RFC 9458 key config bytes' >"$T/pk.bin"
P0=$(python3 -c 'print("ab" * 48)')
run 0 "$CTL" sim doc --pki "$PKI" --pcr 0="$P0" --pcr 16="$P0" --measure 16="$T/model.bin" \
    --measure 15="$T/model.bin" --nonce 00112233445566778899 --user-data aGVsbG8= \
    --public-key "$T/pk.bin" -o "$T/opts.cbor"
run 0 "$CTL" verify --root "$ROOT" --nonce 00112233445566778899 "$T/opts.cbor"
check 1 'j["valid"] and j["pcrs"]["0"] == "ab" * 48 and len(j["pcrs"]) == 17'
check 1 'j["pcrs"]["16"] == sha384(bytes.fromhex("ab" * 48) + sha384(data("'"$T"'/model.bin"))).hex()'
check 1 'j["pcrs"]["15"] == sha384(bytes(48) + sha384(data("'"$T"'/model.bin"))).hex()'
check 1 'j["nonce"] == b64(bytes.fromhex("00112233445566778899")) and j["user_data"] == b64(b"hello")'
check 1 'j["public_key"] == b64(data("'"$T"'/pk.bin"))'
run 1 "$CTL" verify --root "$ROOT" --nonce 00112233445566778898 "$T/opts.cbor"
check 1 'j["error"]["code"] == "nonce_mismatch" and j["module_id"]'
run 1 "$CTL" verify --root "$ROOT" --nonce 0011 "$T/enc.cbor"
check 1 'j["error"]["code"] == "nonce_mismatch"'

# Input size limits are exact: a 1024-byte public key is fine, 1025 is not;
# a base64 document padded with line breaks to just under the read limit
# (2 x 16 KiB + 4 KiB) is read whole.
head -c 1024 /dev/urandom >"$T/pk1024.bin"
head -c 1025 /dev/urandom >"$T/pk1025.bin"
run 0 "$CTL" sim doc --pki "$PKI" --public-key "$T/pk1024.bin" -o "$T/pk1024.cbor"
run 0 "$CTL" verify --root "$ROOT" "$T/pk1024.cbor"
check 1 'j["public_key"] == b64(data("'"$T"'/pk1024.bin"))'
run 2 "$CTL" sim doc --pki "$PKI" --public-key "$T/pk1025.bin" -o "$T/x.cbor"
run 0 "$CTL" sim doc --pki "$PKI" --base64 -o "$T/pad.b64"
python3 -c 'import sys; f = open(sys.argv[1], "a"); f.write("\n" * (36864 - f.tell()))' "$T/pad.b64"
[ "$(wc -c <"$T/pad.b64")" -eq 36864 ] || fail "padding"
run 0 "$CTL" verify --root "$ROOT" "$T/pad.b64"
printf '\n' >>"$T/pad.b64"
run 2 "$CTL" verify --root "$ROOT" "$T/pad.b64"

# --base64 output, read back as base64 (also from stdin)
run 0 "$CTL" sim doc --pki "$PKI" --base64 -o "$T/enc.b64"
python3 -c 'import base64,sys; base64.b64decode(open(sys.argv[1]).read().strip(), validate=True)' "$T/enc.b64" \
    || fail "--base64 output is not base64"
run 0 "$CTL" verify --root "$ROOT" "$T/enc.b64"
check 1 'j["valid"]'
set +e; "$CTL" verify --root "$ROOT" - <"$T/enc.cbor" >"$T/out" 2>"$T/err"; rc=$?; set -e
[ $rc -eq 0 ] || fail "stdin: exit $rc"
check 1 'j["valid"]'

# Raw CBOR in any form goes to the decoder: tag 18 in its two-byte form
# (d8 12) is a COSE_Sign1 too; a raw map is not one (and says so).
python3 - "$T/enc.cbor" "$T/tag2.cbor" "$T/map.cbor" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
open(sys.argv[2], 'wb').write(b'\xd8\x12' + d)
open(sys.argv[3], 'wb').write(b'\xa1\x01\x02')
PY
run 0 "$CTL" verify --root "$ROOT" "$T/tag2.cbor"
check 1 'j["valid"] and j["cose_tagged"] is True'
run 1 "$CTL" verify --root "$ROOT" "$T/map.cbor"
check 1 'j["error"]["code"] == "not_cose_sign1"'

# ---- policies ------------------------------------------------------------
run 0 "$CTL" sim pcrs --pki "$PKI"
python3 - "$T/out" "$T/policy.json" "$T/policy-bad.json" "$T/policy-unknown.json" <<'PY'
import json, sys
p = json.loads(open(sys.argv[1]).read())
p.update({"require_nonce": False, "require_public_key": False})
p["pcrs"] = {k: v for k, v in p["pcrs"].items() if k in ("0", "1", "2")}
json.dump(p, open(sys.argv[2], "w"))
p["pcrs"]["1"] = ["00" * 47 + "01"]
json.dump(p, open(sys.argv[3], "w"))
p["extra"] = 1
json.dump(p, open(sys.argv[4], "w"))
PY
run 0 "$CTL" verify --root "$ROOT" --policy "$T/policy.json" "$T/enc.cbor"
check 1 'j["valid"] and len(j["policy_sha256"]) == 64'
run 1 "$CTL" verify --root "$ROOT" --policy "$T/policy-bad.json" "$T/enc.cbor"
check 1 'j["error"]["code"] == "pcr_mismatch" and [f["index"] for f in j["error"]["pcrs"]] == [1]'
check 1 'j["error"]["pcrs"][0]["allowed"] == ["00" * 47 + "01"] and j["error"]["pcrs"][0]["actual"] == j["pcrs"]["1"]'
run 1 "$CTL" verify --root "$ROOT" --policy "$T/policy.json" "$T/tpm.cbor"
check 1 'j["error"]["code"] == "format_mismatch"'
run 2 "$CTL" verify --root "$ROOT" --policy "$T/policy-unknown.json" "$T/enc.cbor"
grep -q bad_field "$T/err" || fail "unknown policy key not reported"
run 2 "$CTL" verify --root "$ROOT" --policy "$T/nonexistent.json" "$T/enc.cbor"

# ---- time: --at, --at-document-time, expired and not-yet-valid leaves ----
now_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
old_ms=$((now_ms - 4 * 3600 * 1000))
run 0 "$CTL" sim doc --pki "$PKI" --timestamp-ms "$old_ms" --new-leaf -o "$T/old.cbor"
run 1 "$CTL" verify --root "$ROOT" "$T/old.cbor"
check 1 'j["error"]["code"] == "cert_expired" and j["timestamp_ms"] == '"$old_ms"
run 0 "$CTL" verify --root "$ROOT" --at-document-time "$T/old.cbor"
check 1 'j["valid"] and j["checked_at"] == j["timestamp"]'
run 0 "$CTL" verify --root "$ROOT" --at $((old_ms / 1000 + 60)) "$T/old.cbor"
run 1 "$CTL" verify --root "$ROOT" --at $((old_ms / 1000 + 4 * 3600)) "$T/old.cbor"
check 1 'j["error"]["code"] == "cert_expired"'
run 1 "$CTL" verify --root "$ROOT" --at $((old_ms / 1000 - 3600)) "$T/old.cbor"
check 1 'j["error"]["code"] == "cert_not_yet_valid"'
future_ms=$((now_ms + 2 * 3600 * 1000))
run 0 "$CTL" sim doc --pki "$PKI" --timestamp-ms "$future_ms" --new-leaf -o "$T/future.cbor"
run 1 "$CTL" verify --root "$ROOT" "$T/future.cbor"
check 1 'j["error"]["code"] == "cert_not_yet_valid"'
# A leaf minted an hour ago, a document stamped now, checked 10 minutes
# earlier than its stamp: the leaf is valid then, the document is from the
# future.
run 0 "$CTL" sim doc --pki "$PKI" --timestamp-ms $((now_ms - 3600 * 1000)) --new-leaf -o "$T/x.cbor"
run 0 "$CTL" sim doc --pki "$PKI" --timestamp-ms "$now_ms" -o "$T/skew.cbor"
run 1 "$CTL" verify --root "$ROOT" --at $((now_ms / 1000 - 600)) "$T/skew.cbor"
check 1 'j["error"]["code"] == "clock_skew"'

# ---- several documents in one call: one line each, in order ---------------
run 0 "$CTL" sim doc --pki "$PKI" --new-leaf -o "$T/enc2.cbor"
run 1 "$CTL" verify --root "$ROOT" "$T/enc2.cbor" "$T/old.cbor" "$T/tpm.cbor" "$T/enc2.cbor"
lines 4
check 1 'j["valid"]'
check 2 'j["error"]["code"] == "cert_expired"'
check 3 'j["valid"] and j["format"] == "nitro-tpm"'
check 4 'j["valid"]'
run 0 "$CTL" verify --root "$ROOT" "$T/enc2.cbor" "$T/tpm.cbor"
lines 2

# ---- refusals and exit codes ----------------------------------------------
printf 'hello, not a document' >"$T/garbage"
run 1 "$CTL" verify --root "$ROOT" "$T/garbage"
check 1 'j["valid"] is False and j["error"]["code"] == "malformed_cbor"'
head -c 1000 "$T/enc.cbor" >"$T/trunc.cbor"
run 1 "$CTL" verify --root "$ROOT" "$T/trunc.cbor"
check 1 'j["error"]["code"] == "malformed_cbor"'
cat "$T/enc.cbor" "$T/enc.cbor" >"$T/twice.cbor"
run 1 "$CTL" verify --root "$ROOT" "$T/twice.cbor"
check 1 'j["error"]["code"] == "malformed_cbor"'
python3 - "$T/enc.cbor" "$T/flip.cbor" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); d[-10] ^= 1
open(sys.argv[2], 'wb').write(d)
PY
run 1 "$CTL" verify --root "$ROOT" "$T/flip.cbor"
check 1 'j["error"]["code"] == "bad_signature"'
head -c 20000 /dev/zero >"$T/big.cbor"
printf '\204' | dd of="$T/big.cbor" conv=notrunc 2>/dev/null
run 1 "$CTL" verify --root "$ROOT" "$T/big.cbor"
check 1 'j["error"]["code"] == "too_large"'
# The simulator's root is never trusted by default.
run 1 "$CTL" verify "$T/enc.cbor"
check 1 'j["error"]["code"] == "untrusted_root"'
# Another simulator's root: same names, different keys.
run 0 "$CTL" sim init "$T/pki2"
run 1 "$CTL" verify --root "$T/pki2/root.pem" "$T/enc.cbor"
check 1 'j["error"]["code"] == "untrusted_root"'
run 0 "$CTL" verify --root "$T/pki2/root.pem" --root "$ROOT" "$T/enc.cbor"

run 2 "$CTL" verify --root "$ROOT" "$T/missing.cbor"
# A missing file among good ones: the others are still checked.
run 2 "$CTL" verify --root "$ROOT" "$T/enc.cbor" "$T/missing.cbor" "$T/tpm.cbor"
lines 2
run 2 "$CTL" verify --root "$ROOT"
run 2 "$CTL" verify --no-such-option "$T/enc.cbor"
run 2 "$CTL" verify --at yesterday "$T/enc.cbor"
run 2 "$CTL" verify --at -5 "$T/enc.cbor"
run 2 "$CTL" verify --nonce zz "$T/enc.cbor"
run 2 "$CTL" verify --format nitro "$T/enc.cbor"
run 2 "$CTL" verify --root "$T/missing.pem" "$T/enc.cbor"
run 2 "$CTL" verify --root "$T/garbage" "$T/enc.cbor"
run 0 "$CTL" verify --help
run 2 "$CTL" sim doc --pki "$PKI"
run 2 "$CTL" sim doc --pki "$T/nonexistent" -o "$T/x.cbor"
run 2 "$CTL" sim doc --pki "$PKI" --pcr 32="$P0" -o "$T/x.cbor"
run 2 "$CTL" sim doc --pki "$PKI" --pcr 0=abcd -o "$T/x.cbor"
run 2 "$CTL" sim doc --pki "$PKI" --measure 3="$T/missing" -o "$T/x.cbor"
run 2 "$CTL" sim doc --pki "$PKI" --format sgx -o "$T/x.cbor"
run 2 "$CTL" sim

# ---- the genuine AWS documents ---------------------------------------------
set --
for f in "$DATA"/*.cbor; do set -- "$@" "$f"; done
[ $# -eq 14 ] || fail "expected 14 genuine documents, found $#"
run 0 "$CTL" verify --at-document-time "$@"
lines 14
i=1
for f in "$@"; do
    check $i 'j["valid"] and j["aws_root"] and j == j and j["module_id"] == json.load(open("'"${f%.cbor}.json"'"))["module_id"]'
    check $i 'j["pcrs"] == json.load(open("'"${f%.cbor}.json"'"))["pcrs"] and j["certificate"]["subject"] == json.load(open("'"${f%.cbor}.json"'"))["leaf_subject"]'
    i=$((i + 1))
done
run 0 "$CTL" verify --root "$DATA/aws_nitro_root_g1.pem" --at-document-time "$@"
run 1 "$CTL" verify "$@"
lines 14
i=1
for f in "$@"; do check $i 'j["error"]["code"] == "cert_expired"'; i=$((i + 1)); done
run 1 "$CTL" verify --root "$ROOT" --at-document-time "$DATA/ev_ga_2023.cbor"
check 1 'j["error"]["code"] == "untrusted_root"'

# ---- documents AWS's rules forbid (tests/data/conformance, README there) ----
CONF="$AT_SRCDIR/tests/data/conformance"
for c in control_valid:0:none leaf_ku_no_digsig:1:chain_invalid leaf_is_ca:1:chain_invalid \
    pubkey_empty:1:bad_field; do
    name=${c%%:*}; rest=${c#*:}; want=${rest%%:*}; code=${rest#*:}
    run "$want" "$CTL" verify --root "$CONF/test_root.pem" --at-document-time "$CONF/$name.cbor"
    if [ "$code" = none ]; then
        check 1 'j["valid"] is True and j["error"] is None'
    else
        check 1 'j["valid"] is False and j["error"]["code"] == "'"$code"'"'
    fi
done
run 1 "$CTL" verify --root "$CONF/test_root.pem" --at-document-time "$CONF"/*.cbor
lines 4
check 2 '"certificate (leaf): basicConstraints: CA:TRUE" in j["error"]["message"]'
check 3 '"certificate (leaf): keyUsage: keyAgreement, expected digitalSignature" in j["error"]["message"]'
check 4 'j["error"]["message"] == "public_key: 0 bytes, expected 1..1024 or null"'
# The simulator never makes an empty public_key.
: >"$T/empty.key"
run 1 "$CTL" sim doc --pki "$PKI" --public-key "$T/empty.key" -o "$T/x.cbor"
grep -q "public_key: 0 bytes" "$T/err" || fail "sim: no reason given for an empty public_key"

echo "verify_cli: $n_ok checks passed"

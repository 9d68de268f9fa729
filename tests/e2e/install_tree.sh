#!/bin/bash
# `make install DESTDIR=... prefix=/usr` gives an integrator what README
# promises: libattest.so.0 (SONAME) with its public headers in
# /usr/include/attest (each compiles alone, no config.h) and attest.pc;
# examples/verify_doc.c, built with pkg-config against that tree only,
# verifies genuine documents at their own time with the built-in AWS root
# and prints the PCRs the independent decoding lists; at "now" it refuses
# with cert_expired. Also the programs, man pages and units are installed.
set -euo pipefail
B=${AT_BUILD:?}
S=${AT_SRCDIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
D=$tmp/root
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

make -s -C "$B" install DESTDIR="$D" prefix=/usr >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"
    bad "make install"
    exit 1
}
ok "make install DESTDIR prefix=/usr"
for f in usr/bin/attest-verifier usr/bin/attest-agent usr/bin/attest-gateway usr/bin/attestctl \
    usr/lib/libattest.so usr/lib/libattest.so.0 usr/lib/pkgconfig/attest.pc \
    usr/include/attest/evidence.h usr/include/attest/peer.h usr/include/attest/ohttp.h \
    usr/share/man/man1/attest-verifier.1 usr/share/man/man1/attestctl.1 \
    usr/lib/systemd/system/attest-verifier.service; do
    [ -e "$D/$f" ] || bad "not installed: /$f"
done
[ -e "$D/usr/lib/libattest.a" ] && bad "a static libattest.a is installed (shared only)"
soname=$(objdump -p "$D/usr/lib/libattest.so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = libattest.so.0 ] && ok "SONAME libattest.so.0" || bad "SONAME is '$soname'"
# Only at_* is exported (libtool's -export-symbols-regex).
nm -D --defined-only "$D/usr/lib/libattest.so" | awk '{ print $3 }' >"$tmp/syms"
grep -v '^at_' "$tmp/syms" && bad "symbols outside at_* exported"
for s in at_evidence_verify at_trust_add_aws_root at_peer_handle at_ohttp_client_new; do
    grep -qx "$s" "$tmp/syms" || bad "$s not exported"
done

# The build's compiler and link flags (sanitizer builds need their runtime).
CC=$(sed -n 's/^CC = //p' "$B/Makefile")
LDF=$(sed -n 's/^AT_LDFLAGS = //p' "$B/Makefile")
export PKG_CONFIG_PATH="$D/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$D"
cflags=$(pkg-config --cflags attest)
libs=$(pkg-config --libs attest)
echo "pkg-config --cflags --libs attest: $cflags $libs"
case " $libs " in *" -L$D/usr/lib "*) ok "pkg-config --libs points into the installed tree" ;;
*) bad "pkg-config --libs: $libs" ;; esac
for h in "$D"/usr/include/attest/*.h; do
    n=$(basename "$h")
    printf '#include <attest/%s>\n' "$n" >"$tmp/h.c"
    $CC -std=c11 -Wall -Wextra -Werror $cflags -c "$tmp/h.c" -o "$tmp/h.o" 2>"$tmp/h.err" ||
        { bad "attest/$n does not compile alone:"; cat "$tmp/h.err"; }
done
ok "every public header compiles alone ($(ls "$D"/usr/include/attest | wc -l) headers)"
$CC -std=c11 -Wall -Wextra -Werror $cflags "$S/examples/verify_doc.c" -o "$tmp/verify_doc" $libs $LDF ||
    { bad "examples/verify_doc.c does not build against the installed tree"; exit 1; }
ok "examples/verify_doc.c built with pkg-config"
# (Through a file: grep -q closing the pipe early would fail objdump under pipefail.)
objdump -p "$tmp/verify_doc" >"$tmp/verify_doc.dyn"
grep -q 'NEEDED *libattest.so.0' "$tmp/verify_doc.dyn" || bad "verify_doc does not link libattest.so.0"

export LD_LIBRARY_PATH="$D/usr/lib"
for doc in ev_ga_2023 vaportpm_tpm_20260201; do
    "$tmp/verify_doc" "$S/tests/data/nitro/$doc.cbor" >"$tmp/out" || { bad "$doc refused:"; cat "$tmp/out"; continue; }
    python3 - "$S/tests/data/nitro/$doc.json" "$tmp/out" <<'PY' || fail=1
import json, sys
want = json.load(open(sys.argv[1]))["pcrs"]
lines = open(sys.argv[2]).read().splitlines()
got = dict(l[3:].split(" ") for l in lines[1:])
exp = {k: v for k, v in want.items()}
if not lines[0].startswith("valid: ") or got != exp:
    print("FAIL", sys.argv[1], "printed", lines[:3], "...")
    sys.exit(1)
print("ok   %s: valid, its %d PCRs as the independent decoding" % (sys.argv[1].rsplit("/", 1)[1], len(got)))
PY
done
rc=0
"$tmp/verify_doc" --now "$S/tests/data/nitro/ev_ga_2023.cbor" >"$tmp/out" || rc=$?
if [ $rc = 1 ] && grep -q '^invalid: cert_expired' "$tmp/out"; then ok "at now: cert_expired"; else
    bad "at now: status $rc, $(cat "$tmp/out")"; fi
exit $fail

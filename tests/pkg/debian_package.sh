#!/bin/bash
# debian/: `dpkg-buildpackage -us -uc -b` in a temporary copy of the tree
# builds the six packages, lintian reports no error (warnings are printed),
# and each .deb holds what it should (dpkg -x). Takes minutes (a full
# compile): run by .ci/run, not by make check.
#   tests/pkg/debian_package.sh [KEEP_DIR]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
for t in dpkg-buildpackage dh lintian help2man; do
    command -v $t >/dev/null || { echo "debian_package: $t missing (apt-get install dpkg-dev debhelper lintian help2man)" >&2; exit 2; }
done
tmp=${1:-$(mktemp -d)}
[ -n "${1:-}" ] || trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/attest"
# The tree as git sees it (tracked and new files, nothing ignored: no build dirs).
(cd "$top" && git ls-files -z -co --exclude-standard | tar --null -T - -cf -) | tar -C "$tmp/attest" -xf -
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
start=$(date +%s)
if ! (cd "$tmp/attest" && DEB_BUILD_OPTIONS="parallel=2 ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
    tail -n 60 "$tmp/build.log"
    echo "FAIL dpkg-buildpackage -us -uc -b (log: $tmp/build.log)"
    exit 1
fi
ok "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
changes=$(ls "$tmp"/attest_*.changes)
lintian --tag-display-limit 0 "$changes" >"$tmp/lintian.txt" 2>&1 || true
sed 's/^/     lintian: /' "$tmp/lintian.txt"
if grep -q '^E: ' "$tmp/lintian.txt"; then bad "lintian reports errors"; else
    ok "lintian: no error ($(grep -c '^W: ' "$tmp/lintian.txt" || true) warnings)"; fi

V=$(cd "$tmp/attest" && dpkg-parsechangelog -S Version)
A=$(dpkg-architecture -qDEB_HOST_ARCH)
M=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
expect() { # package, files it must hold...
    local p=$1 deb
    shift
    deb="$tmp/${p}_${V}_${A}.deb"
    [ -f "$deb" ] || { bad "$p: no $deb"; return; }
    dpkg-deb --info "$deb" >"$tmp/$p.info" || bad "$p: dpkg-deb --info"
    mkdir -p "$tmp/x/$p" "$tmp/all"
    dpkg -x "$deb" "$tmp/x/$p"
    dpkg -x "$deb" "$tmp/all"
    for f in "$@"; do [ -e "$tmp/x/$p/$f" ] || [ -L "$tmp/x/$p/$f" ] || bad "$p lacks /$f"; done
    ok "$p: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version), files present"
}
expect attest-verifier usr/bin/attest-verifier usr/share/man/man1/attest-verifier.1.gz \
    lib/systemd/system/attest-verifier.service etc/attest/verifier.json.example \
    usr/share/attest/console/index.html usr/share/attest/console/app.js usr/share/attest/console/style.css
expect attest-gateway usr/bin/attest-gateway usr/share/man/man1/attest-gateway.1.gz \
    lib/systemd/system/attest-gateway.service etc/attest/gateway.json.example \
    usr/share/attest/gateway/index.html usr/share/attest/gateway/app.js usr/share/attest/gateway/style.css
expect attest-agent usr/bin/attest-agent usr/share/man/man1/attest-agent.1.gz \
    lib/systemd/system/attest-agent.service etc/attest/agent.json.example
expect attestctl usr/bin/attestctl usr/share/man/man1/attestctl.1.gz
expect libattest0 "usr/lib/$M/libattest.so.0" "usr/lib/$M/libattest.so.0.0.0"
expect libattest-dev usr/include/attest/evidence.h usr/include/attest/peer.h "usr/lib/$M/libattest.so" \
    "usr/lib/$M/pkgconfig/attest.pc" usr/share/doc/libattest-dev/examples/verify_doc.c
grep -q "Depends:.*libattest0 (= $V)" "$tmp/libattest-dev.info" || bad "libattest-dev does not depend on libattest0 (= $V)"
# The units' scripts: installed, neither enabled nor started (a config is needed first).
for s in verifier gateway agent; do
    ctrl="$tmp/ctrl-$s"
    dpkg-deb -e "$tmp/attest-${s}_${V}_${A}.deb" "$ctrl"
    grep -q 'deb-systemd-helper' "$ctrl/postinst" 2>/dev/null || bad "attest-$s: postinst does not register its unit"
    grep -qE 'deb-systemd-invoke (start|restart)' "$ctrl/postinst" 2>/dev/null && bad "attest-$s: postinst starts its unit"
    grep -q '^/etc/attest/'"$s"'.json.example$' "$ctrl/conffiles" || bad "attest-$s: example config is not a conffile"
done
# The units name the installed paths.
grep -qx 'ExecStart=/usr/bin/attest-verifier --config /etc/attest/verifier.json' \
    "$tmp/x/attest-verifier/lib/systemd/system/attest-verifier.service" || bad "unit's ExecStart"
# An integrator builds against the two library packages and runs it.
export PKG_CONFIG_PATH="$tmp/all/usr/lib/$M/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/all"
cc -std=c11 -Wall -Werror $(pkg-config --cflags attest) "$tmp/all/usr/share/doc/libattest-dev/examples/verify_doc.c" \
    -o "$tmp/verify_doc" $(pkg-config --libs attest) || bad "verify_doc.c against libattest-dev"
if out=$(LD_LIBRARY_PATH="$tmp/all/usr/lib/$M" "$tmp/verify_doc" "$top/tests/data/nitro/ev_ga_2023.cbor") &&
    grep -q '^PCR4 d0531b14' <<<"$out"; then ok "verify_doc from libattest-dev runs on libattest0"; else
    bad "verify_doc: $out"; fi
"$tmp/x/attestctl/usr/bin/attestctl" --version >/dev/null || bad "packaged attestctl --version"
exit $fail

#!/usr/bin/env bash
# e2e: HPKE interop between lib/hpke and an independent implementation,
# @hpke/core from npm (tests/interop/hpke_interop.mjs drives
# tests/interop/hpke_tool). Skips (exit 77), loudly, only when node, npm or
# the installed packages are absent; `scripts/quickstart test` installs them.
set -euo pipefail

build=${AT_TEST_BUILDDIR:-$(pwd)}
src=$(cd "$(dirname "$0")/../.." && pwd)
tool=$build/tests/interop/hpke_tool
[ -x "$tool" ] || { echo "missing $tool (run from the build directory)" >&2; exit 99; }

skip() {
    {
        echo
        echo "************************************************************************"
        echo "*** SKIPPED: HPKE interop with @hpke/core was NOT tested: $1"
        echo "************************************************************************"
        echo
    } | tee /dev/stderr
    exit 77
}
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs npm)"
command -v npm >/dev/null || skip "npm is not installed (apt-get install npm)"
for p in core dhkem-x25519 chacha20poly1305; do
    [ -d "$src/tests/interop/node_modules/@hpke/$p" ] ||
        skip "@hpke/$p is not installed (cd tests/interop && npm install)"
done

cd "$src/tests/interop"
HPKE_TOOL=$tool exec node hpke_interop.mjs

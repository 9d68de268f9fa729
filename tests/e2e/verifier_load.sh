#!/bin/sh
# End-to-end: 64 parallel connections attesting through the real verifier
# (every 10th request replays a consumed nonce and must get nonce_reused);
# no other errors, and the verifier exits cleanly (no leak reports under ASan).
set -eu
build=${AT_BUILD:-$(dirname "$0")/../../build}
exec "$build/bench/verifier" --check --connections 64 --docs 640 --replay-every 10 \
    --verifier "$build/verifier/attest-verifier"

#!/bin/sh
# The verifier's storage and end-to-end tests again on PostgreSQL: one real
# server (tests/e2e/pg.py: initdb + postgres in a temporary directory, as an
# unprivileged user, on a free loopback port), test_db's writer and statement
# tests on it, then the core e2e scripts (full cycle and every refusal,
# crash, races, audit, HTTP, state, the console) with AT_DB_BACKEND=pg: each verifier on
# its own database of that server.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${AT_BUILD:-$here/../../build}
export AT_BUILD="$build"
exec python3 "$here/pg.py" run -- sh -c '
    fail=0
    echo "== test_db on PostgreSQL"
    "$AT_BUILD/tests/unit/test_db" || fail=1
    for t in verifier_api verifier_crash verifier_races verifier_audit verifier_http verifier_state console; do
        echo "== $t.py on PostgreSQL"
        AT_DB_BACKEND=pg python3 "'"$here"'/$t.py" || { echo "FAIL $t.py on PostgreSQL"; fail=1; }
    done
    exit $fail'

#!/bin/sh
# bench/gateway.py must keep running (make bench): a 20-request smoke run of
# every case, each answer checked; no timing is asserted.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec python3 "$here/../../bench/gateway.py" --smoke

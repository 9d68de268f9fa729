#!/bin/sh
# Every C file of the tree is as .clang-format says (HOUSE-STYLE: formatting
# is never discussed). On failure it names the files; fix them with
#   clang-format -i FILE...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${AT_SRCDIR:=$(cd "$here/../.." && pwd)}"
command -v clang-format >/dev/null || { echo "clang-format missing (apt-get install clang-format)" >&2; exit 77; }
cd "$AT_SRCDIR"
bad=""
n=0
for f in $(find lib agent gateway verifier ctl bench tests -name '*.[ch]' | sort); do
    n=$((n + 1))
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "FAIL not formatted by .clang-format:$bad"
    echo "     fix: clang-format -i$bad"
    exit 1
fi
echo "ok   $n C files formatted by .clang-format"

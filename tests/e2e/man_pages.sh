#!/bin/bash
# The man pages (man/local.mk, made by help2man from each program's --help)
# render without a groff warning and list every option --help shows.
set -euo pipefail
B=${AT_BUILD:?}
if ! grep -q '^HELP2MAN = ..*' "$B/Makefile"; then
    echo "SKIP: configured without help2man (Debian package help2man)"
    exit 77
fi
command -v man >/dev/null || { echo "SKIP: man is not installed (Debian package man-db)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for p in verifier/attest-verifier agent/attest-agent gateway/attest-gateway ctl/attestctl; do
    name=${p#*/}
    page="$B/man/$name.1"
    [ -f "$page" ] || { echo "FAIL $page was not made"; fail=1; continue; }
    # Wide lines: no option name is hyphenated across two lines.
    if ! LC_ALL=C MANWIDTH=400 man --warnings=all -E ascii -l "$page" >"$tmp/$name.txt" 2>"$tmp/$name.err" ||
        [ -s "$tmp/$name.err" ]; then
        echo "FAIL $name.1 renders with warnings:"
        cat "$tmp/$name.err"
        fail=1
    fi
    for s in NAME DESCRIPTION "SEE ALSO"; do
        grep -q "^$s" "$tmp/$name.txt" || { echo "FAIL $name.1 has no $s section"; fail=1; }
    done
    "$B/$p" --help >"$tmp/$name.help" 2>&1
    opts=$(grep -oE -- '--[a-z0-9][a-z0-9-]*' "$tmp/$name.help" | sort -u)
    [ -n "$opts" ] || { echo "FAIL $name --help shows no option"; fail=1; }
    missing=0
    for o in $opts; do
        grep -qF -- "$o" "$tmp/$name.txt" || { echo "FAIL $name.1 lacks $o (in --help)"; missing=1; fail=1; }
    done
    [ $missing = 0 ] && echo "ok   $name.1 renders and lists its $(echo "$opts" | wc -l) options"
done
exit $fail

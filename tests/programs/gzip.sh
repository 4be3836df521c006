#!/usr/bin/env bash
# gzip workload: compress $PROGIN/gz.bin at several levels, decompress and
# compare with the original byte for byte.
set -eu
in=$PROGIN/gz.bin
for lvl in 1 6 9; do
    gzip -n -"$lvl" -c "$in" >"a$lvl.gz"
    printf 'level %s: ' "$lvl"
    sha256sum <"a$lvl.gz"
    gzip -d -c "a$lvl.gz" | cmp - "$in"
    gzip -t "a$lvl.gz"
done
echo roundtrip ok
cat "$in" "$in" | gzip -n -c | gzip -d -c | sha256sum

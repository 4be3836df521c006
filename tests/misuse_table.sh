#!/usr/bin/env bash
# tests/misuse_table.sh: what gomalloc and the C library's own allocator do
# with each misuse kind of tests/misuse.c and tests/misuse_cxx.cc, side by
# side, as a Markdown table (the source of README.md's table).
#
# Each kind runs in a child process (MISUSE_TABLE=1, see tests/misuse.h),
# once with LD_PRELOAD=$GM and once with no preload; the outcome is the
# signal or exit, the first line of stderr (addresses shortened), and for a
# program that went on, whether the heap still worked (a heap check of
# thousands of blocks in two threads after the misuse).
#
#   make test-build && tests/misuse_table.sh            # build/, gomalloc's default abort mode
#   GOMALLOC_ON_ERROR=warn tests/misuse_table.sh         # gomalloc's warn mode
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${B:-$top/build}
GM=${GM:-$B/libgomalloc.so}
libc=$(ldd --version 2>/dev/null | head -1 | sed 's/.* //')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for prog in misuse misuse_cxx; do
    MISUSE_TABLE=1 LD_PRELOAD="$GM" "$B/tests/$prog" | sed -n 's/^ROW //p' >>"$tmp/gm"
    env -u GOMALLOC_ON_ERROR MISUSE_TABLE=1 "$B/tests/$prog" | sed -n 's/^ROW //p' >>"$tmp/libc"
done
echo "| kind | gomalloc (GOMALLOC_ON_ERROR=${GOMALLOC_ON_ERROR:-abort}) | glibc ${libc} |"
echo "|---|---|---|"
awk -F'|' 'NR == FNR { libc[$1] = $2; next } { printf "| %s | %s | %s |\n", $1, $2, libc[$1] }' \
    "$tmp/libc" "$tmp/gm" | sed 's/`/\\`/g'

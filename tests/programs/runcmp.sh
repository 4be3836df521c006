#!/usr/bin/env bash
# runcmp.sh NAME NEEDS COMMAND [ARGS...]
#
# Runs COMMAND twice, each in its own fresh working directory: once on glibc
# (no preload) and once with LD_PRELOAD=$GM GOMALLOC_STATS=1. Prints one line,
# "PASS NAME" or "FAIL NAME: why", for tests/run.sh to count. Passes when
#   - the glibc run exits 0 (so a broken command cannot pass by failing twice),
#   - the preloaded run has the same exit status and byte-identical stdout,
#   - with GM_EXPECT=1 (default), the preloaded run's stderr mentions
#     "gomalloc" (the library prints a "gomalloc: ..." line at exit when
#     GOMALLOC_STATS=1), i.e. gomalloc really was loaded.
# NEEDS: comma-separated programs that must be installed ("-" for none); a
# missing one is a failure, not a skip (CI installs them).
set -u
name=$1 needs=$2
shift 2
GM=${GM-}
GM_EXPECT=${GM_EXPECT:-1}
# make the preload path independent of the working directories used below
# (a blank GM, e.g. GM=' ' for a plain glibc run, is left alone)
if [ -n "${GM// /}" ] && [ "${GM#/}" = "$GM" ]; then
    GM="$(cd "$(dirname "$GM")" 2>/dev/null && pwd)/$(basename "$GM")"
fi

# a relative command path (e.g. with B=build from the Makefile) must survive
# the cd into the working directories below
case "$1" in
/*) ;;
*/*) set -- "$PWD/$1" "${@:2}" ;;
esac

if [ "$needs" != "-" ]; then
    IFS=, read -r -a progs <<<"$needs"
    for p in "${progs[@]}"; do
        if ! command -v "$p" >/dev/null 2>&1; then
            echo "FAIL $name: required program '$p' is not installed (CI installs it; apt-get install it here)"
            exit 1
        fi
    done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gm-runcmp-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ref" "$work/gm"

t0=$(date +%s.%N)
(cd "$work/ref" && exec env -u LD_PRELOAD -u GOMALLOC_STATS "$@") >"$work/ref.out" 2>"$work/ref.err" </dev/null
rc_ref=$?
t1=$(date +%s.%N)
(cd "$work/gm" && exec env LD_PRELOAD="$GM" GOMALLOC_STATS=1 "$@") >"$work/gm.out" 2>"$work/gm.err" </dev/null
rc_gm=$?
t2=$(date +%s.%N)

show() { # show FILE: last lines of a file as comments
    tail -n "${2:-15}" "$1" | sed 's/^/#   /'
}
why=""
if [ "$rc_ref" -ne 0 ]; then
    why="reference run (glibc) failed with status $rc_ref"
    echo "# reference stderr:"; show "$work/ref.err"
elif [ "$rc_gm" -ne "$rc_ref" ]; then
    why="exit status $rc_gm with LD_PRELOAD=$GM, $rc_ref on glibc"
    echo "# preloaded stderr:"; show "$work/gm.err" 25
elif ! cmp -s "$work/ref.out" "$work/gm.out"; then
    why="stdout differs from the glibc run ($(wc -c <"$work/ref.out") vs $(wc -c <"$work/gm.out") bytes)"
    echo "# diff glibc preloaded:"
    diff "$work/ref.out" "$work/gm.out" | head -n 20 | sed 's/^/#   /'
    echo "# preloaded stderr:"; show "$work/gm.err"
elif [ "$GM_EXPECT" != 0 ] && ! grep -q gomalloc "$work/gm.err"; then
    why="no 'gomalloc' line on stderr with GOMALLOC_STATS=1: was $GM loaded? (GM_EXPECT=0 for a stand-in)"
    echo "# preloaded stderr:"; show "$work/gm.err"
fi
times=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "glibc %.1fs, preloaded %.1fs", b - a, c - b }')
if [ -n "$why" ]; then
    echo "FAIL $name: $why"
    exit 1
fi
echo "# $name: $(wc -l <"$work/ref.out") lines of identical output; $times"
echo "PASS $name ($times)"

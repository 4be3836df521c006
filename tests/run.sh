#!/usr/bin/env bash
# tests/run.sh: runs every test suite and prints one final line "N passed, N failed".
#
# A suite is a file tests/suites/NN-name.sh that calls
#     t NAME TIMEOUT_SECONDS COMMAND [ARGS...]
# for each test program. A program prints "PASS x" / "FAIL x: why" lines
# (tests/testlib.h does this); the runner counts them. A program that exits
# non-zero without printing a FAIL line, crashes or times out counts as one
# failure named after it. Lines starting with '#' are shown, not counted.
#
# Environment: B (build dir, default build), GM (path of libgomalloc.so),
# SUITES (space-separated suite names to run; default all), V=1 (show all output).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
B=${B:-$top/build}
GM=${GM-$B/libgomalloc.so}
export B GM top
passed=0
failed=0
failures=()

t() {
    local name=$1 timeout=$2
    shift 2
    local out rc
    out=$(timeout -k 5 "$timeout" "$@" 2>&1)
    rc=$?
    local p f
    p=$(printf '%s\n' "$out" | grep -c '^PASS ')
    f=$(printf '%s\n' "$out" | grep -c '^FAIL ')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            out="$out"$'\n'"FAIL $name: timed out after ${timeout}s"
        else
            out="$out"$'\n'"FAIL $name: exit status $rc"
        fi
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        out="$out"$'\n'"FAIL $name: printed no result"
        f=1
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "${V:-0}" = 1 ] || [ "$f" -ne 0 ]; then
        printf '%s\n' "$out" | sed "s|^|  [$name] |"
    fi
    while IFS= read -r line; do failures+=("[$name] $line"); done < <(printf '%s\n' "$out" | grep '^FAIL ')
    printf '%-34s %4d passed %3d failed\n' "$name" "$p" "$f"
}

for suite in "$here"/suites/*.sh; do
    sname=$(basename "$suite" .sh)
    if [ -n "${SUITES:-}" ]; then
        case " $SUITES " in *" ${sname#*-} "*|*" $sname "*) ;; *) continue ;; esac
    fi
    echo "== $sname"
    # shellcheck source=/dev/null
    . "$suite"
done

if [ "${#failures[@]}" -gt 0 ]; then
    echo "== failures"
    printf '  %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 40-programs: real programs run twice, on glibc and with LD_PRELOAD=$GM;
# stdout and exit status must be identical (tests/programs/runcmp.sh prints
# one PASS/FAIL line per program). With GM_EXPECT=1 (default) the preloaded
# run must also show gomalloc's exit line (GOMALLOC_STATS=1) on stderr.
# sqlite3 and git are installed by CI; a missing program is a failure.
: "${GM_EXPECT:=1}"
export GM_EXPECT
P="$top/tests/programs"
PROGTMP=$(mktemp -d "${TMPDIR:-/tmp}/gm-programs.XXXXXX")
export PROGIN="$PROGTMP/in"
if ! /usr/bin/python3 "$P/gen_inputs.py" "$PROGIN"; then
    echo "# could not generate the program inputs (is /usr/bin/python3 installed?)"
fi

prog() { # prog NAME TIMEOUT NEEDS COMMAND...
    local name=$1 timeout=$2 needs=$3
    shift 3
    t "$name" "$timeout" "$P/runcmp.sh" "$name" "$needs" "$@"
}

prog prog_python3 240 /usr/bin/python3 \
    env PYTHONMALLOC=malloc PYTHONHASHSEED=0 /usr/bin/python3 "$P/workload.py"
prog prog_sort 180 sort,sha256sum "$P/sort.sh"
prog prog_gzip 120 gzip,sha256sum "$P/gzip.sh"
prog prog_sqlite3 120 sqlite3 "$P/sqlite.sh"
prog prog_git 240 git,awk,sha256sum "$P/git.sh"
prog prog_threaded 120 "$B/tests/prog_threaded" "$B/tests/prog_threaded"

rm -rf "$PROGTMP"
unset PROGTMP PROGIN

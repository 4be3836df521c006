# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 25-misuse: every detected misuse of the C and C++ API (tests/misuse.c,
# tests/misuse_cxx.cc), each kind in a child process asserting the exact
# report line: abort by default (SIGABRT), and GOMALLOC_ON_ERROR=warn
# (the line ends in " (ignored)", the program goes on, the heap still
# works). GOMALLOC_FOREIGN=pass with glibc's own blocks under LD_PRELOAD
# (tests/misuse_foreign.c); the static link, where there is no next
# allocator, is in 10-unit (static_link). tests/misuse_table.sh compares
# with glibc.
t misuse_abort 180 env LD_PRELOAD="$GM" "$B/tests/misuse"
t misuse_warn 180 env LD_PRELOAD="$GM" GOMALLOC_ON_ERROR=warn "$B/tests/misuse"
t misuse_cxx_abort 60 env LD_PRELOAD="$GM" "$B/tests/misuse_cxx"
t misuse_cxx_warn 60 env LD_PRELOAD="$GM" GOMALLOC_ON_ERROR=warn "$B/tests/misuse_cxx"
t misuse_foreign_pass 120 env LD_PRELOAD="$GM" GOMALLOC_FOREIGN=pass "$B/tests/misuse_foreign"

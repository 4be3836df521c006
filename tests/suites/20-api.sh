# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 20-api: the standard C/POSIX/glibc and C++ allocation API contract, with
# gomalloc preloaded. GM_EXPECT=1 (default) makes the gomalloc-specific tests
# fail when gomalloc is not the allocator; GM_EXPECT=0 validates the tests
# against a stand-in (GM=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2, or GM=
# for glibc), where those tests pass as "not applicable".
: "${GM_EXPECT:=1}"
export GM_EXPECT
t api_conformance 120 env LD_PRELOAD="$GM" "$B/tests/api_conformance"
t api_cxx 60 env LD_PRELOAD="$GM" "$B/tests/api_cxx"
t api_lifecycle 60 env LD_PRELOAD="$GM" "$B/tests/api_lifecycle"
# GOMALLOC_SECURE=1 (tests/secure.c: write after free, random order, random
# heap base, guard pages, each against a control run without the option),
# and the conformance and thread stress tests again in secure mode.
t secure 60 env LD_PRELOAD="$GM" "$B/tests/secure"
t secure_api_conformance 120 env LD_PRELOAD="$GM" GOMALLOC_SECURE=1 "$B/tests/api_conformance"
t secure_stress_threads 180 env LD_PRELOAD="$GM" GOMALLOC_SECURE=1 "$B/tests/stress_threads"

# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 38-stress-all: 20 s of tests/stress/stress_all.c (make stress runs it for
# minutes): every API, threads created and exiting continually, fork from
# threaded code with the child's heap checked (gm_check_heap), cross-thread
# frees, contents verified, and the quiescent heap check at the end.
t stress_all 120 env STRESS_TIME=20 STRESS_CHILD_CHECK=1 LD_PRELOAD="$GM" "$B/tests/stress_all"

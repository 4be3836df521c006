# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 30-stress: multi-thread, fork and thread-churn stress with gomalloc preloaded
# (see 20-api.sh for GM_EXPECT). Each program checks object contents; a
# crash, deadlock (alarm/timeout) or corruption is a failure.
: "${GM_EXPECT:=1}"
export GM_EXPECT
t stress_threads 120 env LD_PRELOAD="$GM" "$B/tests/stress_threads"
t stress_fork 180 env LD_PRELOAD="$GM" "$B/tests/stress_fork"
# The same program's fork_while_pages_made_ready with the window it guards
# widened: every Prepared -> Ready transition takes 200 us longer.
t stress_fork_books 60 env LD_PRELOAD="$GM" GOMALLOC_FAULT=used:delay=200 "$B/tests/stress_fork" fork_while_pages_made_ready
t stress_thread_churn 120 env LD_PRELOAD="$GM" "$B/tests/stress_thread_churn"
t stress_adopt 120 env LD_PRELOAD="$GM" "$B/tests/stress_adopt"

# shellcheck shell=bash disable=SC2154  # sourced by tests/run.sh (B, GM, top, t)
# 36-oom: out of memory (tests/oom.c). Every refusal of the OS gives NULL
# with ENOMEM, never a crash or an abort unless GOMALLOC_ON_OOM=abort, and
# the allocator works again once memory is freed. Fault injection
# (GOMALLOC_FAULT) refuses each OS call of a workload in turn, in fresh
# processes (two at a time; OOM_JOBS=N to change); RLIMIT_AS, RLIMIT_DATA
# (the refusals of strict overcommit, per process) and the hard memory limit
# refuse for real.
oom="$B/tests/oom"
t oom_fault_sweep 240 env LD_PRELOAD="$GM" "$oom" fault_sweep_alloc fault_sweep_reserve \
    fault_sweep_reserve_linear fault_sweep_map fault_sweep_used fault_sweep_unused
t oom_fault_persistent 120 env LD_PRELOAD="$GM" "$oom" fault_persistent_alloc fault_persistent_map \
    fault_persistent_any
t oom_limits 120 env LD_PRELOAD="$GM" "$oom" rlimit_as rlimit_data init_tiny_rlimit on_oom_abort fault_option_syntax
t oom_rlimit_data_harddecommit 60 env LD_PRELOAD="$GM" GOMALLOC_HARDDECOMMIT=1 "$oom" rlimit_data
t oom_memlimit_hard 60 env LD_PRELOAD="$GM" GOMALLOC_MEMLIMIT=96MiB GOMALLOC_MEMLIMIT_HARD=1 "$oom" memlimit_hard

# vm.overcommit_memory=2 is machine-wide: while it is set, every process on
# the machine competes for one commit limit, so this runs only on request
# (GM_TEST_OVERCOMMIT=1, as root on a machine of your own). The original
# value is restored on every exit path. RLIMIT_DATA above makes the same
# calls fail (mmap/mprotect of writable private memory) for one process.
ovc=/proc/sys/vm/overcommit_memory
if [ "${GM_TEST_OVERCOMMIT:-0}" = 1 ] && [ -w "$ovc" ]; then
    t oom_overcommit_strict 120 bash -c '
        ovc=/proc/sys/vm/overcommit_memory
        orig=$(cat "$ovc") || exit 1
        trap "echo $orig > $ovc" EXIT INT TERM
        echo 2 > "$ovc" || { echo "FAIL oom_overcommit_strict: cannot set $ovc"; exit 1; }
        env LD_PRELOAD="$GM" "$B/tests/oom" overcommit_strict'
else
    echo "# oom_overcommit_strict skipped: vm.overcommit_memory is machine-wide (GM_TEST_OVERCOMMIT=1 runs it)"
fi

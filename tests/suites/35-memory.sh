# Memory return: scavenger, memory limit, statistics (tests/mem_return.c).
# Each test runs in its own process with the environment it needs.
mr="$B/tests/mem_return"
t mem_release_background 60 env LD_PRELOAD="$GM" "$mr" release_background
t mem_release_background_hugepages 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=1 "$mr" release_background
t mem_release_trim 60 env LD_PRELOAD="$GM" "$mr" release_trim
t mem_scavenge_off 60 env LD_PRELOAD="$GM" GOMALLOC_SCAVENGE=off "$mr" scavenge_off
t mem_scavenge_inline 60 env LD_PRELOAD="$GM" GOMALLOC_SCAVENGE=inline "$mr" scavenge_inline
t mem_limit_soft 60 env LD_PRELOAD="$GM" GOMALLOC_MEMLIMIT=160MiB "$mr" memlimit_soft
t mem_limit_soft_control 60 env LD_PRELOAD="$GM" MEMLIMIT_CONTROL=1 "$mr" memlimit_soft
t mem_limit_hard 60 env LD_PRELOAD="$GM" GOMALLOC_MEMLIMIT=64MiB GOMALLOC_MEMLIMIT_HARD=1 "$mr" memlimit_hard
t mem_fork_with_scavenger 60 env LD_PRELOAD="$GM" "$mr" fork_with_scavenger
t mem_thread_started_by_allocation 60 env LD_PRELOAD="$GM" "$mr" thread_started_by_allocation
t mem_hugepages 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=1 "$mr" hugepages
t mem_hugepages_default 60 env LD_PRELOAD="$GM" "$mr" hugepages
t mem_hugepages_off 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=0 "$mr" hugepages
t mem_hugepages_earlier 60 env LD_PRELOAD="$GM" "$mr" hugepages_earlier
t mem_hugepages_from_128mib 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=128MiB "$mr" hugepages
t mem_hugepage_regions 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=1 "$mr" hugepage_regions
t mem_hugepage_regions_off 60 env LD_PRELOAD="$GM" GOMALLOC_HUGEPAGES=0 "$mr" hugepage_regions
t mem_stats_identities 60 env LD_PRELOAD="$GM" "$mr" stats_identities

/*
 * options.h: GOMALLOC_* environment options.
 *
 * Owns: the one table of options, read once at initialisation straight from
 * environ (no getenv copies, no allocation), and the resulting values.
 * Go counterpart: GODEBUG / GOMEMLIMIT parsing (runtime/runtime1.go).
 *
 * The values are written once by options_init (under the init lock, before
 * any other thread can use the allocator) and read freely afterwards.
 */
#ifndef GOMALLOC_OPTIONS_H
#define GOMALLOC_OPTIONS_H

#include <stdint.h>

#include "internal.h"

enum stats_mode { STATS_OFF, STATS_TEXT, STATS_JSON };

/* GOMALLOC_HUGEPAGES=auto (the default): heap memory that takes the heap's
 * mapped size past this asks for huge pages (mheap.c, heap_add). */
#define HUGEPAGES_AUTO_FROM ((uint64_t)8 << 20)

struct options {
    int verbose;            /* GOMALLOC_VERBOSE=1: print options and notable events */
    int stats;              /* GOMALLOC_STATS=1 | json:FILE: print stats at exit */
    const char *stats_file; /* points into environ */
    int harddecommit;       /* GOMALLOC_HARDDECOMMIT=1: Prepared memory is PROT_NONE */
    int arena_linear;       /* GOMALLOC_ARENA=linear: one contiguous reservation */
    uint64_t linear_reserve;/* GOMALLOC_ARENA_RESERVE: size of that reservation */
    int on_error_warn;      /* GOMALLOC_ON_ERROR=warn: report misuse and continue */
    int foreign_pass;       /* GOMALLOC_FOREIGN=pass: hand pointers outside every arena
                               to the next allocator (foreign.c) */
    int scavenge;           /* GOMALLOC_SCAVENGE: enum scavenge_mode */
    unsigned scavenge_percent; /* GOMALLOC_SCAVENGE_PERCENT: CPU budget, % of one CPU */
    uint64_t memlimit;      /* GOMALLOC_MEMLIMIT: soft memory limit, 0 = none */
    int memlimit_hard;      /* GOMALLOC_MEMLIMIT_HARD=1: refuse allocations past it */
    int on_oom_abort;       /* GOMALLOC_ON_OOM=abort: a failed allocation aborts */
    int secure;             /* GOMALLOC_SECURE=1: the hardened mode (secure.c) */
    uint64_t hugepages_from;/* GOMALLOC_HUGEPAGES: heap memory that takes the heap's
                               mapped size past this many bytes asks for transparent
                               huge pages (madvise MADV_HUGEPAGE, mheap.c); 0: all
                               of it (=1), UINT64_MAX: none (=0) */
    /* GOMALLOC_FAULT=KIND:N[+] (testing): the N-th OS call of KIND fails,
     * with '+' also every later one; N = 0 only counts (os_linux.c).
     * KIND:delay=US: every call of KIND first sleeps US microseconds, which
     * widens the windows a race would need (the fork tests). */
    int fault;              /* set: count calls and report them at exit */
    int fault_kind;         /* enum os_call, or OS_CALL_ANY */
    uint64_t fault_n;
    int fault_repeat;
    uint32_t fault_delay_us;
};

HIDDEN extern struct options options;

/* Parse the environment. Safe to call more than once (later calls no-op). */
void options_init(void);
/* Print the effective options (GOMALLOC_VERBOSE). */
void options_print(int fd);

/* Parse a byte size in Go's GOMEMLIMIT syntax ("512MiB", "1GiB", "12345",
 * "1.5GiB"); returns 0 on success. */
int parse_bytes(const char *s, uint64_t *out);

#endif /* GOMALLOC_OPTIONS_H */

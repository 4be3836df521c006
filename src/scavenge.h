/*
 * scavenge.h: returning free pages to the OS (interface of scavenge.c).
 * Go counterpart: mgcscavenge.go.
 */
#ifndef GOMALLOC_SCAVENGE_H
#define GOMALLOC_SCAVENGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

enum scavenge_mode { SCAVENGE_BACKGROUND, SCAVENGE_INLINE, SCAVENGE_OFF };

struct scavenge_stats {
    _Atomic uint64_t released_bytes; /* total bytes returned to the OS */
    _Atomic uint64_t work_ns;        /* CPU time spent releasing, all paths */
    _Atomic uint64_t background_ns;  /* ... of which on the background thread */
    _Atomic uint64_t runs;           /* madvise calls */
    _Atomic uint64_t limit_hits;     /* allocations that met the memory limit */
};
HIDDEN extern struct scavenge_stats scavenge_stats;

void scavenge_init(void);
/* Release up to `bytes` of free, unscavenged pages, highest addresses
 * first; force ignores the huge-page density rule. Returns bytes released. */
size_t scavenge(size_t bytes, bool force);
/* After pages were freed: wake (or start) the background scavenger, or do
 * a budgeted step inline, if there is enough to return. */
void scavenge_poke(void);
/* In a fork child the thread is started only at the end of the small
 * allocation slow path (mcache_alloc_slow: every program gets there soon,
 * and the large path stays 3 instructions shorter), never from free: the child's free
 * may run inside the C library with its locks held (glibc frees dead
 * threads' TLS under the lock of its stack cache, which pthread_create
 * takes: starting the thread there deadlocked the child). Until then the
 * child's frees work inline. */
HIDDEN extern _Atomic int scavenge_start_wanted;
void scavenge_start_thread(void);
static inline void scavenge_start_if_wanted(void) {
    if (unlikely(atomic_load_explicit(&scavenge_start_wanted, memory_order_relaxed))) scavenge_start_thread();
}
/* Memory limit check after an allocation made `ready_bytes` Ready: returns
 * false if a hard limit refuses it (caller undoes the allocation). */
bool scavenge_check_limit(size_t ready_bytes);
HIDDEN extern _Atomic uint64_t memory_limit; /* UINT64_MAX: none */
/* Give every thread's page cache back to the heap (any thread). */
void scavenge_flush_page_caches(void);
/* Hold off scavenging runs (statistics snapshots, fork). */
void scavenge_run_lock(void);
void scavenge_run_unlock(void);
void scavenge_fork_child(void);
/* Stop claiming new runs (nestable) / resume; runs in flight continue. */
void scavenge_pause(bool on);
void scavenge_shutdown(void);

#endif /* GOMALLOC_SCAVENGE_H */

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
 * first; force ignores the 2 MiB region rules (pagealloc.c,
 * region_releasable). Returns bytes released. */
size_t scavenge(size_t bytes, bool force);
/* After pages were freed (or the memory limit changed): wake the background
 * scavenger, or ask for it to be started and do a budgeted step inline, if
 * there is enough to return. */
void scavenge_poke(void);
/* The thread is never started by a poke, which may come from a free, and
 * a free may run inside the C library with its locks held (glibc frees a
 * dead thread's TLS under the lock of its stack cache, which pthread_create
 * takes: starting the thread there deadlocked a fork child). A poke that
 * wants the thread sets scavenge_start_wanted and works inline; the next
 * allocation slow path (mcache_alloc_slow after the object is chosen, and
 * malloc_large when it goes to the heap) starts it. */
HIDDEN extern _Atomic int scavenge_start_wanted;
/* The heap grew to heap_sys bytes (mheap_grow, heap lock held): once it
 * passes SCAVENGE_THREAD_HEAP the thread is wanted before any free asks for
 * it, so that a program that frees a large heap and then only sleeps still
 * gets the memory back (the allocation that grew the heap starts it). */
#define SCAVENGE_THREAD_HEAP ((uint64_t)32 << 20)
void scavenge_heap_grew(uint64_t heap_sys);
void scavenge_start_thread(void);
static inline void scavenge_start_if_wanted(void) {
    if (unlikely(atomic_load_explicit(&scavenge_start_wanted, memory_order_relaxed))) scavenge_start_thread();
}
/* Memory limit check for an allocation that will make `ready_bytes` more
 * Ready (0: its pages already are); scavenges towards the limit. Returns
 * false if a hard limit refuses it (the caller then does not allocate). */
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

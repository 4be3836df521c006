/*
 * mcache.h: the per-thread cache (interface of mcache.c).
 * Go counterpart: mcache.go (per P there, per thread here).
 */
#ifndef GOMALLOC_MCACHE_H
#define GOMALLOC_MCACHE_H

#include "internal.h"
#include "lock.h"
#include "mspan.h"
#include "pagealloc.h"

/* Counters are written by the owner thread only (relaxed stores) and
 * summed by readers (stats.c). */
struct class_stats {
    uint64_t nmalloc; /* objects handed out (counted when a window is loaded,
                         minus what is left in it when it is put back) */
    uint64_t nfree;   /* objects freed by this thread */
};

struct mcache {
    /* Fast path: the current span of each span class; never NULL (empty
     * slots point to emptyspan, whose alloc_cache is 0). */
    mspan *alloc[NUM_SPAN_CLASSES];

    /* Spans this thread owns besides the current ones (doubly linked). */
    mspan *partial[NUM_SPAN_CLASSES]; /* have free objects */
    mspan *full[NUM_SPAN_CLASSES];    /* believed full */

    /* Owned spans that received remote frees, pushed by the freeing
     * threads (lock-free stack), drained by the owner. */
    mspan *_Atomic notify;

    mutex pcache_lock;                       /* guards pcache: the owner, or a thread
                                                flushing every cache (scavenge.c) */
    page_cache pcache;
    struct class_stats stats[NUM_SPAN_CLASSES]; /* by span class, owner only */
    uint64_t large_nmalloc, large_nfree;     /* owner only */
    uint64_t large_alloc_bytes, large_free_bytes;

    mcache *next, *prev; /* every live cache (cache list lock) */
    bool fallback;       /* the shared cache of threads without one */
};

/* The cache of every thread that has none yet (or no more): all slots point
 * to emptyspan, so the first allocation falls into the slow path. */
extern mcache mcache_empty;
extern __thread mcache *tls_cache __attribute__((tls_model("initial-exec")));

static ALWAYS_INLINE mcache *current_cache(void) { return tls_cache; }

/* Slow path of malloc for span class spc: refill and allocate one object.
 * Returns NULL (errno ENOMEM) when the heap cannot grow. */
void *mcache_alloc_slow(uint8_t spc);
/* Owner-side events of the free path. */
void mcache_free_event(mcache *c, mspan *s);
/* File s as an owned partial or full span (or release it if empty). */
void mcache_keep_full(mcache *c, mspan *s);
/* Process the notify stack: absorb remote frees of owned spans. */
void mcache_drain_notify(mcache *c);
/* Hand every owned span and the page cache back (thread exit, fork). */
void mcache_release_all(mcache *c);
/* Per-thread setup on first use; thread exit. */
mcache *mcache_for_thread(void);
void mcache_thread_exit(void *arg);
/* Statistics: sum the counters of every live cache into *out. */
void mcache_sum_stats(struct class_stats out[NUM_SIZE_CLASSES], uint64_t large[4], uint32_t *nthreads);
/* Fork support. */
void mcache_fork_prepare(void);
void mcache_fork_parent(void);
void mcache_fork_child(void);
void mcache_fork_lock_caches(void);
void mcache_fork_unlock_caches(void);
/* Give every thread's page cache back to the heap (any thread). */
void mcache_flush_all_page_caches(void);
void mcache_init(void);

/* Statistics counters of threads that no longer have a cache, and of frees
 * made by threads without one (atomic). */
struct orphan_stats {
    _Atomic uint64_t nmalloc[NUM_SIZE_CLASSES];
    _Atomic uint64_t nfree[NUM_SIZE_CLASSES];
    _Atomic uint64_t large_nmalloc, large_nfree, large_alloc_bytes, large_free_bytes;
};
extern struct orphan_stats orphan_stats;

static inline void stat_add(uint64_t *counter, uint64_t n) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Count a free of span class spc by thread cache c (or globally when the
 * thread has none). */
static inline void count_free(mcache *c, uint8_t spc) {
    if (c != &mcache_empty)
        stat_add(&c->stats[spc].nfree, 1);
    else
        atomic_fetch_add_explicit(&orphan_stats.nfree[spanclass_sizeclass(spc)], 1, memory_order_relaxed);
}

#endif /* GOMALLOC_MCACHE_H */

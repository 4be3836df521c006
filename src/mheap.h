/*
 * mheap.h: the page heap (interface of mheap.c). Go counterpart: mheap.go.
 */
#ifndef GOMALLOC_MHEAP_H
#define GOMALLOC_MHEAP_H

#include "fixalloc.h"
#include "internal.h"
#include "lock.h"
#include "mcentral.h"
#include "pagealloc.h"

/* Span records come in kinds by bitmap size: 0, 1, 2, 4, 8, 16 words. */
#define SPAN_RECORD_KINDS 6
HIDDEN extern const uint8_t span_record_words[SPAN_RECORD_KINDS];
/* The smallest record kind with room for nwords bitmap words. */
unsigned span_record_kind(unsigned nwords);

struct mheap {
    mutex lock; /* the heap lock: pages, growth, cur_arena, large stats */
    struct page_alloc pages;
    uintptr_t cur_arena_base, cur_arena_end; /* reserved, not yet given to pages */
    fixalloc spanalloc[SPAN_RECORD_KINDS];
    fixalloc cachealloc;

    /* Statistics (bytes are pages * PAGE_SIZE). */
    _Atomic uint64_t pages_inuse;    /* pages of in-use spans */
    _Atomic uint64_t pagecache_free; /* pages held by per-thread page caches */
    _Atomic uint64_t pagecache_scav; /* ... of which scavenged */
    uint64_t heap_sys;               /* bytes given to the page allocator (heap lock;
                                        relaxed atomic stores, read without the lock
                                        by the scavenger) */
    sysstat heap_sys_stat;           /* the same, as an OS-layer purpose counter */

    mcentral central[NUM_SPAN_CLASSES];

    /* Record bytes lost in a fork child: held by threads that were in the
     * middle of creating a span or a cache (mheap_fork_reclaim). */
    uint64_t fork_leaked_records[SPAN_RECORD_KINDS];
    uint64_t fork_leaked_caches;
};
HIDDEN extern struct mheap mheap_;

/* -1 (ENOMEM) if the page allocator cannot reserve its summaries. */
int mheap_init(void);
/* A span of npages for span class spanclass (size class 0: a large object),
 * initialised, in use, its pages recorded in the arena index. c (may be NULL)
 * lends its page cache. align_pages > 1 aligns the base (large spans).
 * NULL with errno ENOMEM on failure. */
mspan *mheap_alloc_span(uintptr_t npages, uint8_t spanclass, mcache *c, uintptr_t align_pages);
/* Return a dead span's pages to the page allocator and its record. */
void mheap_free_span(mspan *s);
/* The same for a span its owner c just released (dead): its pages go back
 * to c's page cache when they lie in the cache's window, without the heap
 * lock; else mheap_free_span. */
void mheap_release_span(mspan *s, mcache *c);
/* Large spans: grow in place if the following pages are free / give back
 * the tail. */
bool mheap_grow_large(mspan *s, uintptr_t new_npages);
void mheap_shrink_large(mspan *s, uintptr_t new_npages);
/* Give a page cache's pages back (heap lock taken inside). */
void mheap_flush_pagecache(page_cache *pc);
/* Call fn on every live span (any state but DEAD), in address order; fn may
 * free the span it is given. Only where nothing else can change the heap:
 * the child after fork (single thread). */
void mheap_for_each_span(void (*fn)(mspan *s, void *arg), void *arg);
/* The child after fork: free pages held by no live span (see mheap.c);
 * ncaches: the caches left. */
void mheap_fork_reclaim(uint64_t ncaches);

#endif /* GOMALLOC_MHEAP_H */

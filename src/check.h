/*
 * check.h: heap invariant checks (interface of check.c).
 * Go counterpart: the consistency checks scattered through the runtime
 * (mheap's checkAllSpans in tests, pageAlloc's checks, mcentral sanity).
 */
#ifndef GOMALLOC_CHECK_H
#define GOMALLOC_CHECK_H

#include <stdbool.h>
#include <stddef.h>

#include "internal.h"

/* heap_check modes. LOCKED may be used at any time by a thread that holds
 * no allocator lock: it takes every lock (malloc_lock_all) and checks what
 * the locks protect. QUIESCENT checks everything, and needs, besides the
 * locks, that no other thread is inside an allocation function for the
 * duration of the call (threads may exist, parked outside the allocator;
 * the background scavenger may run). */
enum { HEAP_CHECK_LOCKED = 0, HEAP_CHECK_QUIESCENT = 1 };

/* Returns 0, or -1 with the first broken invariant described in why. */
int heap_check(unsigned mode, char *why, size_t cap);
/* The same; a broken invariant is fatal (throw). */
void heap_check_or_throw(unsigned mode);

/* Local checks at component boundaries (debug builds; each throws):
 *   span_check_unowned  a span just given to, or taken from, mcentral: its
 *                       record matches its class, its allocation bits
 *                       count alloc_count, remote frees only hit live objects;
 *   span_check_dead     a span whose pages are about to go back: every page
 *                       maps to it, and every object it still counted live
 *                       was freed by a remote free. */
void span_check_unowned(mspan *s);
void span_check_dead(mspan *s);
/* After mheap_alloc_span set it up: every page maps to s. */
void span_check_new(mspan *s);

/* malloc.c: take / release every allocator lock in the lock order (the fork
 * handlers and heap_check). */
void malloc_lock_all(void);
void malloc_unlock_all(void);

#endif /* GOMALLOC_CHECK_H */

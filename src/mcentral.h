/*
 * mcentral.h: shared pool of unowned spans, one per span class (interface
 * of mcentral.c). Go counterpart: mcentral.go.
 */
#ifndef GOMALLOC_MCENTRAL_H
#define GOMALLOC_MCENTRAL_H

#include "internal.h"
#include "lock.h"

struct mcentral {
    mutex lock;        /* guards partial, npartial and every unowned span's transitions */
    uint8_t spanclass;
    mspan *partial;    /* unowned spans with free objects (doubly linked) */
    uint64_t npartial; /* length of partial */
    uint64_t nfull;    /* unowned full spans (on no list) */
} __attribute__((aligned(CACHE_LINE)));

void mcentral_init(mcentral *mc, uint8_t spanclass);
/* A span of class spc owned by c, with an allocation window loaded: an
 * unowned partial span if there is one, else a new span from the heap.
 * NULL when the heap cannot grow. */
mspan *mcentral_cache_span(uint8_t spc, mcache *c);
/* The owner gives s up (it is on none of the owner's lists, and not a
 * current span any more): s becomes
 * unowned partial or full, or goes back to the heap if nothing in it lives. */
void mcentral_release(mspan *s, mcache *c);
/* Remote free into an unowned span whose free_state became `seen`: move a
 * full span to the partial list, or free a span whose last object died. */
void mcentral_remote_transition(mspan *s, uint64_t seen);
/* Remote free into an owned span: push it on its owner's notify stack (the
 * caller set NOTIFY while the span was owned). */
void mcentral_notify_owner(mspan *s);

/* The child after fork (single thread; see mcentral.c):
 *   mcentral_fork_orphan   s was owned by a thread that does not exist in
 *                          the child (its window already written back):
 *                          absorb its remote frees, file it unowned or free it;
 *   mcentral_fork_unowned  s is PARTIAL or FULL: count its remote frees
 *                          exactly, finish the transition one was making;
 *   mcentral_fork_recount  set s's remote-free count to its remote bits
 *                          (clears NOTIFY); returns the count. */
void mcentral_fork_orphan(mspan *s);
void mcentral_fork_unowned(mspan *s);
uint32_t mcentral_fork_recount(mspan *s);

#endif /* GOMALLOC_MCENTRAL_H */

/*
 * fixalloc.h: metadata memory (the interface of fixalloc.c).
 *
 * persistentalloc: bump allocation of metadata that is never freed.
 * fixalloc: free-list allocator of one fixed object size (span records,
 * caches, ...), refilled from persistentalloc.
 * Go counterpart: runtime/mfixalloc.go, persistentalloc in runtime/malloc.go.
 */
#ifndef GOMALLOC_FIXALLOC_H
#define GOMALLOC_FIXALLOC_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#include "lock.h"
#include "os.h"

/* Metadata bytes obtained from the OS, by purpose (all in state Ready).
 * Their sum is every byte of metadata; `other` includes unused chunk tails. */
struct metastats {
    sysstat mspan;     /* span records */
    sysstat mcache;    /* per-thread caches */
    sysstat arena;     /* heap-arena records and the arena index */
    sysstat pagealloc; /* page-allocator summary levels (mapped part) */
    sysstat other;     /* everything else */
};
HIDDEN extern struct metastats metastats;

/* Zeroed, never freed; align a power of two <= 4096. NULL if the OS refuses. */
void *persistentalloc(size_t size, size_t align, sysstat *stat);

typedef struct fixalloc {
    mutex lock;         /* leaf lock: guards every field below */
    size_t size;        /* object size */
    int zero;           /* zero objects when they are reused */
    void *list;         /* free objects, linked through their first word */
    uintptr_t chunk;    /* bump region of the current chunk */
    size_t nchunk;      /* bytes left in it */
    uint64_t inuse;     /* bytes handed out and not freed */
    sysstat *stat;      /* where chunk bytes are counted */
} fixalloc;

void fixalloc_init(fixalloc *f, size_t size, int zero, sysstat *stat);
/* Returns an object (zeroed if fresh, or if f->zero), NULL on OOM. */
void *fixalloc_alloc(fixalloc *f);
void fixalloc_free(fixalloc *f, void *p);
uint64_t fixalloc_inuse(fixalloc *f);

/* For the fork handlers. */
void persistentalloc_lock(void);
void persistentalloc_unlock(void);
void persistentalloc_reinit(void);

#endif /* GOMALLOC_FIXALLOC_H */

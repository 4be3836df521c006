/*
 * fixalloc.c: the allocator's own metadata memory.
 *
 * Owns: persistentalloc (bump allocation from 256 KiB chunks of Ready memory
 * that is never freed) and fixalloc (a LIFO free list of fixed-size objects
 * refilled 16 KiB at a time from persistentalloc). Nothing else in the
 * library provides metadata memory, and none of it comes from malloc.
 * Go counterpart: runtime/mfixalloc.go and persistentalloc (malloc.go).
 *
 * Locking: persistentalloc has one leaf lock. Deviation from Go: each
 * fixalloc carries its own leaf lock, where Go requires callers to hold the
 * heap lock; span records are then allocated without the heap lock, so
 * threads that refill spans from their page caches do not meet on it.
 *
 * Accounting: chunk bytes are counted in metastats.other when mapped, and
 * move to the caller's purpose counter as they are handed out.
 *
 * Secure mode (GOMALLOC_SECURE=1): every chunk, and every large piece,
 * lies between two inaccessible guard pages (sys_alloc_guarded), so a
 * linear overrun out of the metadata faults instead of corrupting a
 * neighbour.
 *
 * Out of memory: when the OS refuses a 256 KiB chunk, persistentalloc tries
 * once more with just the pages the request needs, then returns NULL;
 * fixalloc_alloc returns NULL too, and nothing has changed (a chunk's
 * unused tail stays usable). The callers turn that into ENOMEM.
 */
#include "fixalloc.h"

#include <string.h>

#include "options.h"
#include "print.h"

struct metastats metastats;

enum {
    persistent_chunk = 256 << 10,
    fixalloc_chunk = 16 << 10,
};

static struct {
    mutex lock;
    uintptr_t base; /* bump pointer into the current chunk */
    size_t left;
} persistent;

void *persistentalloc(size_t size, size_t align, sysstat *stat) {
    if (align == 0) align = 8;
    if ((align & (align - 1)) || align > 4096) throw("persistentalloc: bad align %zu", align);
    size = (size + 7) & ~(size_t)7;
    if (size >= 64 << 10) {
        /* Large metadata (arena records) comes straight from the OS. */
        size_t n = (size + phys_page_size - 1) & ~(phys_page_size - 1);
        return options.secure ? sys_alloc_guarded(n, stat) : sys_alloc(n, stat);
    }
    lock(&persistent.lock);
    uintptr_t p = (persistent.base + align - 1) & ~(uintptr_t)(align - 1);
    if (!persistent.base || p + size > persistent.base + persistent.left) {
        void *chunk = options.secure ? sys_alloc_guarded(persistent_chunk, &metastats.other)
                                     : sys_alloc(persistent_chunk, &metastats.other);
        if (!chunk) {
            /* Near the limit a mapping of just this request may still fit;
             * the current chunk keeps its tail for smaller requests. */
            unlock(&persistent.lock);
            return sys_alloc((size + phys_page_size - 1) & ~(phys_page_size - 1), stat);
        }
        persistent.base = (uintptr_t)chunk;
        persistent.left = persistent_chunk;
        p = persistent.base;
    }
    size_t used = p + size - persistent.base;
    persistent.base += used;
    persistent.left -= used;
    unlock(&persistent.lock);
    sysstat_add(&metastats.other, -(int64_t)size);
    sysstat_add(stat, (int64_t)size);
    return (void *)p;
}

void persistentalloc_lock(void) { lock(&persistent.lock); }
void persistentalloc_unlock(void) { unlock(&persistent.lock); }
void persistentalloc_reinit(void) { mutex_reinit(&persistent.lock); }

void fixalloc_init(fixalloc *f, size_t size, int zero, sysstat *stat) {
    if (size < sizeof(void *)) size = sizeof(void *);
    f->size = (size + 7) & ~(size_t)7;
    f->zero = zero;
    f->list = NULL;
    f->chunk = 0;
    f->nchunk = 0;
    f->inuse = 0;
    f->stat = stat;
    mutex_reinit(&f->lock);
}

void *fixalloc_alloc(fixalloc *f) {
    lock(&f->lock);
    void *v = f->list;
    if (v) {
        f->list = *(void **)v;
        f->inuse += f->size;
        unlock(&f->lock);
        if (f->zero)
            memset(v, 0, f->size);
        else
            *(void **)v = NULL;
        return v;
    }
    if (f->nchunk < f->size) {
        size_t n = fixalloc_chunk - fixalloc_chunk % f->size;
        if (n < f->size) n = f->size;
        void *chunk = persistentalloc(n, 64, f->stat);
        if (!chunk) {
            unlock(&f->lock);
            return NULL;
        }
        f->chunk = (uintptr_t)chunk;
        f->nchunk = n;
    }
    v = (void *)f->chunk;
    f->chunk += f->size;
    f->nchunk -= f->size;
    f->inuse += f->size;
    unlock(&f->lock);
    return v; /* fresh from the OS: already zero */
}

void fixalloc_free(fixalloc *f, void *p) {
    lock(&f->lock);
    f->inuse -= f->size;
    *(void **)p = f->list;
    f->list = p;
    unlock(&f->lock);
}

uint64_t fixalloc_inuse(fixalloc *f) {
    lock(&f->lock);
    uint64_t n = f->inuse;
    unlock(&f->lock);
    return n;
}

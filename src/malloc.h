/*
 * malloc.h: the allocation and free fast paths (inline), shared by the gm_
 * API (malloc.c) and the standard names (override.c).
 * Go counterpart: mallocgc's small-object path and nextFreeFast (malloc.go).
 *
 * malloc, small object: size -> class by table; pop the thread's reuse
 * list for the class if it has an object; else the class's current span:
 * count-trailing-zeros of its 64-bit window, clear the bit. No lock, no
 * atomic; the slow path only when both are empty.
 *
 * free: arena index -> arena record -> span (two loads); if this thread
 * owns the span, check that the pointer is an object start and that the
 * object is in use (and not on a reuse list: its tag), then push it on the
 * reuse list. No lock, no atomic. Everything else (a full list, other
 * owners, large objects, bad pointers) goes to free_slow.
 */
#ifndef GOMALLOC_MALLOC_H
#define GOMALLOC_MALLOC_H

#include "arena.h"
#include "gomalloc.h"
#include "internal.h"
#include "mcache.h"
#include "mspan.h"

/* Set the allocator up on first use; false (errno ENOMEM) if the OS
 * refused what start-up needs: the next call tries again. */
bool malloc_init(void);
extern _Atomic int malloc_initialised;
/* Register the fork handlers if start-up could not (any thread). */
void malloc_register_fork_handlers(void);
/* Every failed allocation of count x size bytes ends here: errno ENOMEM,
 * and with GOMALLOC_ON_OOM=abort a report and abort(). Returns NULL. */
void *malloc_failed(size_t count, size_t size) __attribute__((cold));

void *malloc_large(size_t size, bool zero, size_t align);
void free_slow(void *ptr);

static ALWAYS_INLINE uint8_t small_spanclass(size_t size) {
    unsigned cls = size <= SMALL_SIZE_MAX ? malloc_size_to_class8[(size + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV]
                                          : malloc_size_to_class128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) /
                                                                    LARGE_SIZE_DIV];
    return make_spanclass(cls, 1);
}

/* One object of span class spc (asked for as size bytes) from the thread's
 * cache. */
static ALWAYS_INLINE void *alloc_small(uint8_t spc, size_t size) {
    mcache *c = current_cache();
    struct cache_class *k = &c->k[spc];
    uint32_t n = k->nreuse;
    if (likely(n != 0)) {
        void **p = k->reuse[n - 1];
        k->nreuse = n - 1;
        p[1] = NULL; /* drop the tag */
        k->nmalloc++;
        return p;
    }
    uint64_t window = k->window;
    if (unlikely(window == 0)) return mcache_alloc_slow(spc, size);
    k->window = window & (window - 1);
    return (void *)(k->window_base + (uintptr_t)__builtin_ctzll(window) * k->elemsize);
}

static ALWAYS_INLINE void *malloc_inline(size_t size) {
    if (likely(size <= MAX_SMALL_SIZE)) return alloc_small(small_spanclass(size), size);
    return malloc_large(size, false, 0);
}

static ALWAYS_INLINE void free_inline(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    mspan *s = span_lookup(p);
    mcache *c = current_cache();
    if (likely(s != NULL) && likely(span_owner(s) == c)) {
        /* off * div_mul: the high half is the object index; the low half is
         * below div_mul exactly when off is a multiple of the object size
         * (mksizeclasses checks the magic is exact, and the remainder times
         * div_mul cannot wrap for spans this small). */
        uint64_t prod = (uint64_t)(p - s->base) * s->div_mul;
        uintptr_t idx = (uintptr_t)(prod >> 32);
        unsigned w = (unsigned)(idx >> 6);
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (likely((uint32_t)prod < s->div_mul) && likely(idx < s->nelems)) {
            struct cache_class *k = &c->k[s->spanclass];
            uint64_t window = cache_window_for(k, s, w);
            void **q = ptr;
            /* In use per the bitmaps (not freed by another thread either),
             * room on the list, and not on it already. */
            uint32_t n = k->nreuse;
            if (likely(span_alloc_word(s, w) & ~(window | span_remote_word(s, w)) & bit) &&
                likely(n < k->reuse_limit) && likely(!reuse_tagged(q))) {
                k->reuse[n] = q;
                k->nreuse = n + 1;
                q[1] = (void *)(reuse_tag ^ p);
                k->nfree++;
                return;
            }
        }
    }
    free_slow(ptr);
}

/* Usable size and validity of an allocated pointer; reports misuse for op. */
size_t usable_size_checked(const void *ptr, const char *op);

#endif /* GOMALLOC_MALLOC_H */

/*
 * malloc.h: the allocation and free fast paths (inline), shared by the gm_
 * API (malloc.c) and the standard names (override.c).
 * Go counterpart: mallocgc's small-object path and nextFreeFast (malloc.go).
 *
 * malloc, small object: size -> class by table, the thread's current span
 * for the class, count-trailing-zeros of its 64-bit window, clear the bit.
 * No lock, no atomic, one branch to the slow path when the window is empty.
 *
 * free: arena index -> arena record -> span (two loads); if this thread
 * owns the span, check that the pointer is an object start and that the
 * object is in use, clear its bit. No lock, no atomic. Everything else
 * (other owners, large objects, bad pointers) goes to free_slow.
 */
#ifndef GOMALLOC_MALLOC_H
#define GOMALLOC_MALLOC_H

#include "arena.h"
#include "gomalloc.h"
#include "internal.h"
#include "mcache.h"
#include "mspan.h"

void malloc_init(void);
extern _Atomic int malloc_initialised;

void *malloc_large(size_t size, bool zero, size_t align);
void free_slow(void *ptr);

static ALWAYS_INLINE uint8_t small_spanclass(size_t size) {
    unsigned cls = size <= SMALL_SIZE_MAX ? malloc_size_to_class8[(size + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV]
                                          : malloc_size_to_class128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) /
                                                                    LARGE_SIZE_DIV];
    return make_spanclass(cls, 1);
}

/* One object of span class spc from the thread's cache. */
static ALWAYS_INLINE void *alloc_small(uint8_t spc) {
    mcache *c = current_cache();
    mspan *s = c->alloc[spc];
    uint64_t cache = s->alloc_cache;
    if (unlikely(cache == 0)) return mcache_alloc_slow(spc);
    s->alloc_cache = cache & (cache - 1);
    return (void *)(s->cache_base + (uintptr_t)__builtin_ctzll(cache) * s->elemsize);
}

static ALWAYS_INLINE void *malloc_inline(size_t size) {
    if (likely(size <= MAX_SMALL_SIZE)) return alloc_small(small_spanclass(size));
    return malloc_large(size, false, 0);
}

static ALWAYS_INLINE void free_inline(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    mspan *s = span_lookup(p);
    mcache *c = current_cache();
    if (likely(s != NULL) && likely(span_owner(s) == c)) {
        uintptr_t off = p - s->base;
        uintptr_t idx = span_object_index(s, off);
        unsigned w = (unsigned)(idx >> 6);
        uint64_t bit = (uint64_t)1 << (idx & 63);
        if (likely(idx * s->elemsize == off) && likely(idx < s->nelems)) {
            uint64_t a = span_alloc_word(s, w);
            uint64_t window = w == s->cache_word ? s->alloc_cache : 0;
            if (likely(a & ~(window | span_remote_word(s, w)) & bit)) {
                span_set_alloc_word(s, w, a & ~bit);
                stat_add(&c->stats[s->spanclass].nfree, 1);
                if (likely(--s->countdown != 0)) return;
                mcache_free_event(c, s);
                return;
            }
        }
    }
    free_slow(ptr);
}

/* Usable size and validity of an allocated pointer; reports misuse for op. */
size_t usable_size_checked(const void *ptr, const char *op);

#endif /* GOMALLOC_MALLOC_H */

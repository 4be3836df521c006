/*
 * malloc.h: the allocation and free fast paths (inline), shared by the gm_
 * API (malloc.c) and the standard names (override.c).
 * Go counterpart: mallocgc's small-object path and nextFreeFast (malloc.go).
 *
 * malloc, small object: size -> the class's cache slot by table; pop the
 * thread's reuse stack for the class if it has an object; else the class's
 * current span: count-trailing-zeros of its 64-bit window, clear the bit.
 * No lock, no atomic; the slow path only when both are empty.
 *
 * free: arena index (masked) -> arena record -> the page's free-map entry
 * (two loads; arena.h, struct free_entry); if the entry names this
 * thread's cache, the entry's copy of the span's constants gives one
 * multiply that checks that the pointer is an object start and that the
 * object was handed out (exact_index below fast_fresh), and word 1 that it
 * is not free now (no free tag: mspan.h); then push it on the reuse stack
 * and tag it. No lock, no atomic, no bitmap, no span record. Everything
 * else (a full stack, other owners, large objects, bad or doubtful
 * pointers) goes to the slow paths, which read the span and decide from
 * the bitmaps.
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
HIDDEN extern _Atomic int malloc_initialised;
bool malloc_init_slow(void);
static ALWAYS_INLINE bool malloc_init(void) {
    return likely(atomic_load_explicit(&malloc_initialised, memory_order_acquire)) || malloc_init_slow();
}
/* Register the fork handlers if start-up could not (any thread). */
void malloc_register_fork_handlers(void);
/* Every failed allocation of count x size bytes ends here: errno ENOMEM,
 * and with GOMALLOC_ON_OOM=abort a report and abort(). Returns NULL. */
void *malloc_failed(size_t count, size_t size) __attribute__((cold));

void *malloc_large(size_t size, bool zero, size_t align);
void free_slow(void *ptr);
/* free of ptr on a page the calling thread does not own (its free-map
 * entry names another cache or none); s is the span the page maps to
 * (NULL if none): remote frees and large objects take short paths,
 * anything doubtful free_slow. errno is kept. */
void free_not_owned(void *ptr, mspan *s);
/* free of an object in use of a span c owns when c's reuse stack for the
 * class is full. */
void free_overflow(mcache *c, void *ptr);

static ALWAYS_INLINE unsigned small_spanclass(size_t size) {
    return size <= SMALL_SIZE_MAX
               ? malloc_size_to_spanclass8[(size + SMALL_SIZE_DIV - 1) / SMALL_SIZE_DIV]
               : malloc_size_to_spanclass128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) / LARGE_SIZE_DIV];
}

/* One object from the thread cache's slot at byte offset slot from the
 * cache (cache_slot_offset; the size tables give offsets, so the fast path
 * needs no shift), asked for as size bytes. The top of the reuse stack is
 * reuse_bytes below the slot's start (mcache.h, struct class_block). */
static ALWAYS_INLINE void *alloc_slot(unsigned slot, size_t size) {
    struct cache_class *k = (struct cache_class *)((char *)current_cache() + slot);
    uint32_t top = k->reuse_bytes;
    if (likely(top != 0)) {
        void **p = *(void ***)((char *)reuse_stack(k) + top - sizeof(void *));
        reuse_word_add(k, -REUSE_POP);
        p[1] = NULL; /* drop the tag */
        return p;
    }
    if (unlikely(k->window == 0)) return mcache_alloc_slot_slow(size, k);
    return cache_window_pop(k);
}

/* One object of span class spc (asked for as size bytes) from the thread's
 * cache. */
static ALWAYS_INLINE void *alloc_small(unsigned spc, size_t size) {
    return alloc_slot(cache_slot_offset(spc), size);
}

static ALWAYS_INLINE void *malloc_inline(size_t size) {
    if (likely(size <= SMALL_SIZE_MAX))
        return alloc_slot(malloc_size_to_slot1[size], size);
    if (likely(size <= MAX_SMALL_SIZE))
        return alloc_slot(malloc_size_to_slot128[(size - SMALL_SIZE_MAX + LARGE_SIZE_DIV - 1) / LARGE_SIZE_DIV], size);
    return malloc_large(size, false, 0);
}

/* Is p, in span s which the calling thread owns, an object in use that
 * the reuse stacks may take? An object start handed out since the span was
 * set up, of a class with reuse stacks (span_exact_index below
 * mspan.fast_fresh), and not free now (no free tag: mspan.h). */
static ALWAYS_INLINE bool owned_object_in_use(const mspan *s, uintptr_t p) {
    return likely(span_exact_index(s, p) < s->fast_fresh) && likely(!reuse_tagged((const void *)p));
}

/* free of ptr whose free-map entry e (arena.h) names the calling thread's
 * cache c: the object goes on c's reuse stack if it is an object start
 * handed out since the span was set up, of a class with reuse stacks
 * (exact_index below fast_fresh), and not free now (no free tag: mspan.h).
 * Anything else goes to the slow paths. */
static ALWAYS_INLINE void free_owned(void *ptr, mcache *c, const struct free_entry *e) {
    uintptr_t p = (uintptr_t)ptr;
    if (likely(exact_index(e->base, e->div_inv, e->div_shift, p) < e->fast_fresh) &&
        likely(!reuse_tagged(ptr))) {
        struct cache_class *k = (struct cache_class *)((char *)c + e->cache_slot);
        uint32_t top = k->reuse_bytes;
        if (likely(top < k->reuse_end)) { /* room on the stack */
            void **q = ptr;
            q[1] = (void *)free_tag(p); /* free: tagged */
            *(void **)((char *)reuse_stack(k) + top) = q;
            reuse_word_add(k, REUSE_PUSH);
            return;
        }
        free_overflow(c, ptr);
        return;
    }
    free_slow(ptr);
}

static ALWAYS_INLINE void free_inline(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    heap_arena *ha = arena_of_masked(p);
    if (unlikely(ha == NULL)) {
        free_slow(ptr); /* NULL, or not ours */
        return;
    }
    const struct free_entry *e = free_entry_of(ha, p);
    mcache *c = current_cache();
    if (likely(free_entry_owner(e) == c)) {
        free_owned(ptr, c, e);
        return;
    }
    free_not_owned(ptr, arena_span_of(ha, p));
}

/* Usable size and validity of an allocated pointer; reports misuse for op. */
size_t usable_size_checked(const void *ptr, const char *op);

#endif /* GOMALLOC_MALLOC_H */

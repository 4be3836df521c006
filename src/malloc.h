/*
 * malloc.h: the allocation and free fast paths (inline), shared by the gm_
 * API (malloc.c) and the standard names (override.c).
 * Go counterpart: mallocgc's small-object path and nextFreeFast (malloc.go).
 *
 * malloc, small object: size -> the class's cache slot by table; pop the
 * thread's reuse stack for the class if it has an object; else the class's
 * current span: count-trailing-zeros of its 64-bit window, clear the bit.
 * No lock, no atomic; the slow path only when both are empty. (x86-64, the
 * reuse-stack path: 13 instructions.)
 *
 * free: the arena index slot's offset into free_maps, plus the page's, is
 * the page's free-map entry (one load and an add from memory; arena.h); if
 * the entry names this thread (its thread pointer), the entry's copy of
 * the span's constants gives one 32-bit multiply that checks that the
 * pointer is an object start and that the object was handed out
 * (free_index below fast_fresh), and word 1 that it is not free now (no
 * free tag: mspan.h); then push it on the reuse stack of the entry's slot
 * and tag it. No lock, no atomic, no bitmap, no span record, and on x86-64
 * 29 instructions. Everything else (a full stack, other owners, large
 * objects, bad or doubtful pointers) goes to the slow paths, which read
 * the span and decide from the bitmaps. bench/insn-budget.txt holds the
 * instruction counts; a change that adds one shows in make bench-insn.
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
/* free of ptr (below 2^HEAP_ADDR_BITS) on a page the calling thread does
 * not own (its free-map entry names another cache or none): remote frees
 * and large objects take short paths, anything doubtful free_slow. errno
 * is kept. */
void free_not_owned(void *ptr);
/* The same, s the span ptr's page maps to (NULL if none). */
void free_not_owned_span(void *ptr, mspan *s);
/* free of an object in use of a span the calling thread owns when its
 * reuse stack for the class is full. */
void free_overflow(void *ptr);

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

/* A field of the free-map entry at byte offset off from maps (&free_maps),
 * read as maps + off + field offset: one addressing mode, no add. */
#define ENTRY_FIELD(maps, off, field)                                                                      \
    (*(const __typeof__(((struct free_entry *)0)->field) *)((maps) + (off) + offsetof(struct free_entry, field)))
/* Make the compiler forget what it knows of x (no instruction): it then
 * addresses the entry's fields as base + index + displacement instead of
 * first adding maps and off into a register of their own. */
#define OPAQUE(x) __asm__("" : "+r"(x))

/* free of ptr whose free-map entry (at off from maps, arena.h) names the
 * calling thread: the object goes on the reuse stack of the entry's slot
 * if it is an object start handed out since the span was set up, of a
 * class with reuse stacks (free_index below fast_fresh), and not free now
 * (no free tag: mspan.h). Anything else goes to the slow paths. */
static ALWAYS_INLINE void free_owned(void *ptr, const char *maps, uintptr_t off) {
    uintptr_t p = (uintptr_t)ptr;
    OPAQUE(maps);
    OPAQUE(off);
    if (likely(free_index(ENTRY_FIELD(maps, off, base), ENTRY_FIELD(maps, off, mult), p) <
               ENTRY_FIELD(maps, off, fast_fresh)) &&
        likely(!reuse_tagged(ptr))) {
        struct cache_class *k = ENTRY_FIELD(maps, off, slot);
        uint32_t top = k->reuse_bytes;
        if (likely(top < k->reuse_end)) { /* room on the stack */
            void **q = ptr;
            q[1] = (void *)free_tag(p); /* free: tagged */
            *(void **)((char *)reuse_stack(k) + top) = q;
            reuse_word_add(k, REUSE_PUSH);
            return;
        }
        free_overflow(ptr);
        return;
    }
    free_slow(ptr);
}

/* free: the arena index slot of ptr (any pointer at or above
 * 2^HEAP_ADDR_BITS goes to the slow path), its page's free-map entry, the
 * owner compared with the thread's id; see free_owned. */
static ALWAYS_INLINE void free_inline(void *ptr) {
    uintptr_t p = (uintptr_t)ptr;
    if (unlikely((p >> ARENA_SHIFT) >= ARENA_INDEX_LEN)) {
        free_slow(ptr); /* not ours */
        return;
    }
    const char *maps = (const char *)&free_maps;
    OPAQUE(maps);
    uintptr_t off = free_entry_offset(maps, p);
    if (likely(free_entry_owner((const struct free_entry *)(maps + off)) == thread_id())) {
        free_owned(ptr, maps, off);
        return;
    }
    free_not_owned(ptr);
}

/* Usable size and validity of an allocated pointer; reports misuse for op. */
size_t usable_size_checked(const void *ptr, const char *op);

#endif /* GOMALLOC_MALLOC_H */

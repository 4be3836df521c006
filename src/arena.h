/*
 * arena.h: heap arenas and the arena index (interface of arena.c).
 *
 * The heap lives in 64 MiB arenas. The arena index maps any address to
 * its arena record in one load; the record maps each 8 KiB page to the
 * span holding it (Go: spanOf, two dependent loads).
 * Go counterpart: heapArena and mheap.arenas (mheap.go), sysAlloc (malloc.go).
 */
#ifndef GOMALLOC_ARENA_H
#define GOMALLOC_ARENA_H

#include "internal.h"
#include "pagealloc.h"

struct heap_arena {
    /* Page -> span, valid for every page of an in-use span, stale (or NULL)
     * elsewhere. Written under the heap lock or by the page-cache owner when
     * a span is created; read lock-free. */
    mspan *_Atomic spans[PAGES_PER_ARENA];

    /* Page-allocator state for this arena's 16 chunks (heap lock). The
     * page allocator that grew this arena owns these; others read them as
     * fully in use (tests run private page allocators beside the heap's). */
    struct page_alloc *palloc;
    uint16_t grown;                          /* chunks given to palloc, one bit each */
    uint16_t huge;                           /* chunks marked for huge pages (mheap.c) */
    palloc_sum arena_sum;                    /* level 3 of the radix tree */
    palloc_sum chunk_sum[CHUNKS_PER_ARENA];  /* level 4 */
    struct palloc_chunk chunks[CHUNKS_PER_ARENA];

    /* Bytes from the arena start that have never been handed out (Go's
     * zeroedBase): memory at or above it is still zero. CAS only. */
    _Atomic uintptr_t zeroed_base;

    uintptr_t base;         /* first byte of the arena */
    heap_arena *next;       /* all arenas, in creation order (heap lock) */
};

/* The arena index: 2^ARENA_INDEX_BITS entries, NULL for address space that
 * is not ours. Entries only go NULL -> record, under the heap lock. */
HIDDEN extern heap_arena *_Atomic arena_index[ARENA_INDEX_LEN];

static ALWAYS_INLINE heap_arena *arena_of(uintptr_t p) {
    if (unlikely(p >> HEAP_ADDR_BITS)) return NULL;
    return atomic_load_explicit(&arena_index[p >> ARENA_SHIFT], memory_order_relaxed);
}

/* The span recorded for the page of p modulo 2^HEAP_ADDR_BITS: the free
 * fast path's lookup, with no branch on the high bits. A pointer with high
 * bits set aliases a heap page, and span_exact_index rejects it (its offset
 * into the span is above 2^HEAP_ADDR_BITS). */
static ALWAYS_INLINE mspan *span_lookup_masked(uintptr_t p) {
    heap_arena *ha =
        atomic_load_explicit(&arena_index[(p >> ARENA_SHIFT) & (ARENA_INDEX_LEN - 1)], memory_order_relaxed);
    if (unlikely(!ha)) return NULL;
    return atomic_load_explicit(&ha->spans[(p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)],
                                memory_order_relaxed);
}

/* The span recorded for p's page; NULL if none. May be stale: callers that
 * do not own the span check its state and bounds. */
static ALWAYS_INLINE mspan *span_lookup(uintptr_t p) {
    if (unlikely(p >> HEAP_ADDR_BITS)) return NULL;
    return span_lookup_masked(p);
}

static inline heap_arena *arena_of_chunk(uintptr_t ci) {
    return atomic_load_explicit(&arena_index[ci / CHUNKS_PER_ARENA], memory_order_relaxed);
}

/* Reserve at least n bytes of new heap address space (a multiple of the
 * arena size, arena aligned), create the arena records and publish them in
 * the index. Returns the base and *got, or 0 (errno ENOMEM) when the OS
 * refuses the address space or the records. Heap lock held. */
uintptr_t arena_reserve(uintptr_t n, uintptr_t *got);
/* Give back [base, base+n), the end of the last reservation, unused (a
 * failed heap growth). Heap lock held. */
void arena_unreserve(uintptr_t base, uintptr_t n);

/* Record that [base, base+npages) belongs to span s. */
void arena_set_spans(uintptr_t base, uintptr_t npages, mspan *s);

/* Does [base, base+npages) need zeroing before use (Go: allocNeedsZero)?
 * Raises the arenas' zeroed_base marks. */
bool arena_needs_zero(uintptr_t base, uintptr_t npages);

/* All arenas, for statistics and heap walks. */
HIDDEN extern heap_arena *_Atomic all_arenas;

#endif /* GOMALLOC_ARENA_H */

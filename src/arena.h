/*
 * arena.h: heap arenas and the arena index (interface of arena.c).
 *
 * The heap lives in 64 MiB arenas. The arena index maps any address to
 * its arena record in one load; the record maps each 8 KiB page to the
 * span holding it (Go: spanOf, two dependent loads), and, for pages of
 * spans a thread cache owns, to the free map's copy of what the owner's
 * free fast path needs (no Go counterpart: Go frees by sweeping).
 * Go counterpart: heapArena and mheap.arenas (mheap.go), sysAlloc (malloc.go).
 */
#ifndef GOMALLOC_ARENA_H
#define GOMALLOC_ARENA_H

#include "internal.h"
#include "pagealloc.h"

/* A page's entry in its arena's free map: a copy of what the free fast
 * path needs from the small span holding the page while a thread cache
 * owns that span, so that free reads one entry, two to a cache line, and
 * not the span record (whose free-path line, one per span, is what kept
 * missing the cache). owner is NULL on every other page. Only the owner
 * reads the other fields, and only while owner names it: the owner writes
 * them, then owner, when it takes the span, and clears owner when it gives
 * the span up (mspan.c, span_set_owner); so an owner never meets its own
 * name on a page it does not own, and another thread only ever compares
 * owner with its own cache and goes to the span record. */
#define FREE_ENTRY_SHIFT 5 /* log2 sizeof(struct free_entry) */
struct free_entry {
    mcache *_Atomic owner;
    uintptr_t base;      /* the span's: see span_exact_index */
    uint64_t div_inv;
    uint32_t fast_fresh;
    uint16_t cache_slot;
    uint8_t div_shift;
    uint8_t unused;
};
_Static_assert(sizeof(struct free_entry) == (size_t)1 << FREE_ENTRY_SHIFT, "two free-map entries per cache line");

struct heap_arena {
    /* Page -> free-path copy of an owned small span (struct free_entry).
     * First, so that the free fast path addresses an entry with no
     * displacement. */
    struct free_entry free_map[PAGES_PER_ARENA];

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
static ALWAYS_INLINE heap_arena *arena_of_masked(uintptr_t p) {
    return atomic_load_explicit(&arena_index[(p >> ARENA_SHIFT) & (ARENA_INDEX_LEN - 1)], memory_order_relaxed);
}
/* The span recorded for p's page in ha, p's arena. */
static ALWAYS_INLINE mspan *arena_span_of(heap_arena *ha, uintptr_t p) {
    return atomic_load_explicit(&ha->spans[(p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1)], memory_order_relaxed);
}
static ALWAYS_INLINE mspan *span_lookup_masked(uintptr_t p) {
    heap_arena *ha = arena_of_masked(p);
    if (unlikely(!ha)) return NULL;
    return arena_span_of(ha, p);
}

/* The free-map entry of p's page in ha, p's arena (p modulo
 * 2^HEAP_ADDR_BITS, as span_lookup_masked). */
static ALWAYS_INLINE const struct free_entry *free_entry_of(const heap_arena *ha, uintptr_t p) {
    /* &ha->free_map[page index], the index's shift folded into one */
    uintptr_t off = (p >> (PAGE_SHIFT - FREE_ENTRY_SHIFT)) & ((PAGES_PER_ARENA - 1) << FREE_ENTRY_SHIFT);
    return (const struct free_entry *)((const char *)ha->free_map + off);
}
static ALWAYS_INLINE mcache *free_entry_owner(const struct free_entry *e) {
    return atomic_load_explicit(&((struct free_entry *)e)->owner, memory_order_relaxed);
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
/* Fork child: clear every free-map entry whose owner keep rejects (a dead
 * thread may have been between writing a span's entries and its owner
 * field when the parent forked). Returns how many it cleared. */
uintptr_t arena_fork_clear_free_map(bool (*keep)(mcache *));

/* Does [base, base+npages) need zeroing before use (Go: allocNeedsZero)?
 * Raises the arenas' zeroed_base marks. */
bool arena_needs_zero(uintptr_t base, uintptr_t npages);

/* All arenas, for statistics and heap walks. */
HIDDEN extern heap_arena *_Atomic all_arenas;

#endif /* GOMALLOC_ARENA_H */

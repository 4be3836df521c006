/*
 * arena.h: heap arenas and the arena index (interface of arena.c).
 *
 * The heap lives in 64 MiB arenas. The arena index maps any address to
 * its arena record in one load; the record maps each 8 KiB page to the
 * span holding it (Go: spanOf, two dependent loads), and, for pages of
 * spans a thread cache owns, to the free map's copy of what the owner's
 * free fast path needs (no Go counterpart: Go frees by sweeping), which
 * free reaches through free_maps without loading the record's address.
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
 * missing the cache). owner is 0 on every other page.
 *
 * owner is the owning cache's thread id (mcache.owner_id: its thread's
 * thread pointer, which free reads in one instruction; the shared fallback
 * cache has an id no thread has). Only the owner reads the other fields,
 * and only while owner names it: the owner writes them, then owner, when
 * it takes the span, and clears owner when it gives the span up (mspan.c,
 * span_set_owner), which a thread's cache does for all its spans before
 * the thread exits; so a thread never meets its own id on a page it does
 * not own, and another thread only ever compares owner with its own id and
 * goes to the span record. */
#define FREE_ENTRY_SHIFT 5 /* log2 sizeof(struct free_entry) */
struct free_entry {
    _Atomic uintptr_t owner;
    struct cache_class *slot; /* the owner's cache slot for the span's class */
    uint32_t base;            /* the span's base, low 32 bits (free_index) */
    uint32_t mult;            /* free_index's multiplier for the class */
    uint32_t fast_fresh;      /* the span's */
    uint8_t spanclass;
    uint8_t unused[3];
};
_Static_assert(sizeof(struct free_entry) == (size_t)1 << FREE_ENTRY_SHIFT, "two free-map entries per cache line");

/* The index of the object that starts at p, if p is an object start in the
 * span whose free-map entry holds base and mult (and p < 2^HEAP_ADDR_BITS, which puts p's page in
 * that span); otherwise a number of at least the span's object count. In
 * 32-bit arithmetic: with elemsize = odd * 2^k, mult is the inverse of odd
 * modulo 2^32 times 2^(15 - k), so an object start i * elemsize becomes
 * exactly i * 2^15, and rotating right by 15 gives i; an offset x with
 * other low bits keeps them, and the rotation moves them to the top. If
 * the result is some j below 2^17, then x = j * elemsize modulo 2^(17 + k),
 * so x is an object start or j * elemsize is at least 2^(17 + k), which is
 * at least the span's size (every small span, at most 80 KiB, is within
 * 2^20: tests/unit/sizeclass.c checks each class). So one multiply and one
 * compare against fast_fresh check "object start" and "handed out"
 * together, with no shift count to load (span_exact_index, the slow paths'
 * test, rotates by k and works in 64 bits for any p). */
#define FREE_INDEX_ROTATE 15
static ALWAYS_INLINE uint32_t free_index(uint32_t base, uint32_t mult, uintptr_t p) {
    uint32_t v = ((uint32_t)p - base) * mult;
    return (v >> FREE_INDEX_ROTATE) | (v << (32 - FREE_INDEX_ROTATE));
}
static inline uint32_t free_index_mult(uint64_t div_inv, unsigned div_shift) {
    return (uint32_t)div_inv << (FREE_INDEX_ROTATE - div_shift);
}

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

/* The arena of p modulo 2^HEAP_ADDR_BITS: a lookup with no branch on the
 * high bits, for paths that then check the pointer against the span. A
 * pointer with high bits set aliases a heap page, and span_exact_index
 * rejects it (its offset into the span is above 2^HEAP_ADDR_BITS). */
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

/* Where free finds the free-map entry of any address below
 * 2^HEAP_ADDR_BITS without a branch on "is there an arena": per arena-index
 * slot, the offset of the arena's free map from an all-zero map (none),
 * which is also what the offset 0 of a slot without an arena gives. So an
 * entry's address is &free_maps + offset + page offset, and an address
 * that is not the heap's reads an entry whose owner is 0. Offsets go
 * 0 -> arena only, under the heap lock (arena.c), like arena_index, and
 * are read with plain loads (one add from memory on the fast path): a
 * thread meets an arena's addresses only after it was published. */
struct free_map_index {
    struct free_entry none[PAGES_PER_ARENA];
    uintptr_t offset[ARENA_INDEX_LEN];
};
HIDDEN extern struct free_map_index free_maps;

/* The byte offset from free_maps of the free-map entry of p's page (p below
 * 2^HEAP_ADDR_BITS); maps is &free_maps (the fast path holds it in a
 * register, see free_inline). */
static ALWAYS_INLINE uintptr_t free_entry_offset(const char *maps, uintptr_t p) {
    /* page index * entry size, the index's shift folded into one */
    uintptr_t page = (p >> (PAGE_SHIFT - FREE_ENTRY_SHIFT)) & ((PAGES_PER_ARENA - 1) << FREE_ENTRY_SHIFT);
    return page + ((const uintptr_t *)(maps + offsetof(struct free_map_index, offset)))[p >> ARENA_SHIFT];
}
/* The free-map entry of p's page (p below 2^HEAP_ADDR_BITS); one of none
 * if p is in no arena. */
static ALWAYS_INLINE struct free_entry *free_entry_of(uintptr_t p) {
    return (struct free_entry *)((char *)&free_maps + free_entry_offset((const char *)&free_maps, p));
}
static ALWAYS_INLINE uintptr_t free_entry_owner(const struct free_entry *e) {
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
uintptr_t arena_fork_clear_free_map(bool (*keep)(uintptr_t owner_id));

/* Does [base, base+npages) need zeroing before use (Go: allocNeedsZero)?
 * Raises the arenas' zeroed_base marks. */
bool arena_needs_zero(uintptr_t base, uintptr_t npages);

/* All arenas, for statistics and heap walks. */
HIDDEN extern heap_arena *_Atomic all_arenas;

#endif /* GOMALLOC_ARENA_H */

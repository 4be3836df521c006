/*
 * arena.c: heap address space, the arena index, per-arena metadata.
 *
 * Owns: reserving heap address space in 64 MiB arenas (Go's mheap.sysAlloc
 * with its address hints), the arena records (page -> span map, the page
 * allocator's per-chunk bitmaps and low summary levels, the zeroed-base
 * mark), and the arena index that maps an address to its record.
 * Go counterpart: heapArena, mheap.arenas, arenaHints (mheap.go, malloc.go).
 *
 * Layout: by default arenas are sparse, as in Go since 1.11: each
 * reservation tries the next of Go's hints (0x00c000000000, 0x01c000000000,
 * ...; a recognisable range far from the program's own mappings) and falls
 * back to anywhere, aligned to 64 MiB. GOMALLOC_ARENA=linear reproduces the
 * Go <= 1.10 layout: one large contiguous reservation made up front, from
 * which arenas are carved in order (the heap is then one range).
 *
 * GOMALLOC_SECURE=1 puts every hint at a random address (secure.c).
 *
 * Index: a flat array of 2^(HEAP_ADDR_BITS-26) record pointers (Go's
 * single-level L2 map on amd64) in zero-initialised static memory, demand
 * paged by the kernel: only the entries near the heap are ever touched.
 * Records are 68 KiB each (0.1% of an arena) and come from the OS through
 * persistentalloc; they are never freed, like Go's.
 *
 * Out of memory: a refused reservation makes arena_reserve try the next
 * hint, then anywhere, then return 0; so does a range whose records cannot
 * all be allocated (it is given back). A caller
 * that cannot use a reservation returns it with arena_unreserve, which
 * rewinds the hint (or the linear region) so nothing is lost. Records, once
 * published, stay in the index even when their address space is given
 * back: such an arena reads as fully in use, has no spans, and its record
 * is reused if the range is reserved again.
 *
 * Locking: arena_reserve runs under the heap lock. Index entries go from
 * NULL to a record once, published with a release store; readers use
 * relaxed loads and never need a lock. spans[] entries are written by the
 * thread creating a span (heap lock or its page cache) and read by free.
 */
#include "arena.h"

#include <string.h>

#include "fixalloc.h"
#include "options.h"
#include "os.h"
#include "print.h"
#include "secure.h"

heap_arena *_Atomic arena_index[ARENA_INDEX_LEN] __attribute__((visibility("hidden")));
struct free_map_index free_maps;
heap_arena *_Atomic all_arenas;

#define NUM_HINTS 64

static struct {
    uintptr_t hints[NUM_HINTS]; /* next address to try for each hint, 0 = dropped */
    unsigned next_hint;
    bool initialised;
    uintptr_t linear_next, linear_end; /* GOMALLOC_ARENA=linear region */
    bool linear_tried;
} state;

static void init_hints(void) {
    /* Go (malloc.go, mallocinit): 0x00c0<<32 | i<<40 for i = 0..0x3f. */
    for (unsigned i = 0; i < NUM_HINTS; i++) state.hints[i] = (uintptr_t)0x00c0 << 32 | (uintptr_t)i << 40;
    if (options.secure) {
        /* Secure mode: every hint at a random arena-aligned address in
         * [1 TiB, 64 TiB), so the heap base differs from run to run. */
        for (unsigned i = 0; i < NUM_HINTS; i++)
            state.hints[i] = secure_random_address((uintptr_t)1 << 40, (uintptr_t)1 << 46, ARENA_BYTES);
    }
    state.initialised = true;
}

static bool in_heap_range(uintptr_t base, uintptr_t n) {
    return base && base + n > base && ((base + n - 1) >> HEAP_ADDR_BITS) == 0;
}

static heap_arena *arena_create(uintptr_t base) {
    heap_arena *ha = persistentalloc(sizeof(heap_arena), 4096, &metastats.arena);
    if (!ha) return NULL;
    ha->base = base;
    /* Chunks not yet given to the page allocator read as fully in use. */
    for (unsigned i = 0; i < CHUNKS_PER_ARENA; i++) memset(ha->chunks[i].alloc, 0xff, sizeof ha->chunks[i].alloc);
    ha->next = atomic_load_explicit(&all_arenas, memory_order_relaxed);
    atomic_store_explicit(&all_arenas, ha, memory_order_release);
    /* The free-map offset first: a thread that finds the arena in the
     * index may own a span in it at once, and its frees use the offset. */
    __atomic_store_n(&free_maps.offset[base >> ARENA_SHIFT], (uintptr_t)ha->free_map - (uintptr_t)&free_maps,
                     __ATOMIC_RELEASE);
    atomic_store_explicit(&arena_index[base >> ARENA_SHIFT], ha, memory_order_release);
    return ha;
}

/* Reserve [v, v+n) exactly, or fail without keeping anything. */
static bool reserve_exact(uintptr_t v, uintptr_t n) {
    void *p = sys_reserve((void *)v, n);
    if (!p) return false;
    if ((uintptr_t)p != v) {
        sys_free(p, n, OS_RESERVED, NULL);
        return false;
    }
    return true;
}

static uintptr_t reserve_anywhere(uintptr_t n) {
    void *p = sys_reserve(NULL, n + ARENA_BYTES);
    if (!p) return 0;
    uintptr_t raw = (uintptr_t)p, base = round_up(raw, ARENA_BYTES);
    if (base > raw) sys_free(p, base - raw, OS_RESERVED, NULL);
    uintptr_t end = raw + n + ARENA_BYTES;
    if (end > base + n) sys_free((void *)(base + n), end - (base + n), OS_RESERVED, NULL);
    if (!in_heap_range(base, n)) {
        sys_free((void *)base, n, OS_RESERVED, NULL);
        return 0;
    }
    return base;
}

static uintptr_t reserve_linear(uintptr_t n) {
    if (!state.linear_tried) {
        state.linear_tried = true;
        uintptr_t size = round_up(options.linear_reserve, ARENA_BYTES);
        for (unsigned i = 0; i < NUM_HINTS && !state.linear_end; i++) {
            uintptr_t v = state.hints[i];
            if (in_heap_range(v, size) && reserve_exact(v, size)) {
                state.linear_next = v;
                state.linear_end = v + size;
                state.hints[i] = 0; /* the region owns this hint now */
            }
        }
        if (options.verbose && state.linear_end)
            print_err("gomalloc: linear heap reserved at %p, %zu MiB\n", (void *)state.linear_next,
                      (size_t)(size >> 20));
    }
    if (state.linear_end - state.linear_next < n) return 0;
    uintptr_t base = state.linear_next;
    state.linear_next += n;
    return base;
}

uintptr_t arena_reserve(uintptr_t n, uintptr_t *got) {
    if (!state.initialised) init_hints();
    n = round_up(n, ARENA_BYTES);
    if (!n) return 0;
    uintptr_t base = 0;
    if (options.arena_linear) base = reserve_linear(n);
    while (!base && state.next_hint < NUM_HINTS) {
        uintptr_t v = state.hints[state.next_hint];
        if (v && in_heap_range(v, n) && reserve_exact(v, n)) {
            base = v;
            state.hints[state.next_hint] = v + n; /* grow upwards from here next time */
            break;
        }
        state.hints[state.next_hint] = 0; /* taken by someone else: drop it */
        state.next_hint++;
    }
    if (!base) base = reserve_anywhere(n);
    if (!base) return 0;
    for (uintptr_t a = base; a < base + n; a += ARENA_BYTES) {
        if (!arena_of(a) && !arena_create(a)) {
            /* Out of memory for metadata: the caller needs all n bytes, so
             * give the range back (the records made so far stay, reusable). */
            arena_unreserve(base, n);
            return 0;
        }
    }
    sys_name((void *)base, n, "gomalloc heap");
    *got = n;
    return base;
}

void arena_unreserve(uintptr_t base, uintptr_t n) {
    /* A range ending at linear_next was carved from the linear region (no
     * other reservation overlaps it). */
    if (options.arena_linear && state.linear_end && base + n == state.linear_next) {
        state.linear_next = base; /* the linear region keeps it for next time */
        return;
    }
    sys_free((void *)base, n, OS_RESERVED, NULL);
    for (unsigned i = 0; i < NUM_HINTS; i++)
        if (state.hints[i] == base + n) state.hints[i] = base; /* try this address again */
}

void arena_set_spans(uintptr_t base, uintptr_t npages, mspan *s) {
    uintptr_t p = base, end = base + npages * PAGE_SIZE;
    while (p < end) {
        heap_arena *ha = arena_of(p);
        uintptr_t i = (p >> PAGE_SHIFT) & (PAGES_PER_ARENA - 1);
        uintptr_t stop = round_down(p, ARENA_BYTES) + ARENA_BYTES;
        if (stop > end) stop = end;
        for (; p < stop; p += PAGE_SIZE, i++) atomic_store_explicit(&ha->spans[i], s, memory_order_release);
    }
}

uintptr_t arena_fork_clear_free_map(bool (*keep)(uintptr_t owner_id)) {
    uintptr_t cleared = 0;
    for (heap_arena *ha = atomic_load_explicit(&all_arenas, memory_order_relaxed); ha; ha = ha->next)
        for (unsigned j = 0; j < CHUNKS_PER_ARENA; j++) {
            if (!(ha->grown >> j & 1)) continue; /* no span was ever there */
            for (unsigned i = j * CHUNK_PAGES; i < (j + 1) * CHUNK_PAGES; i++) {
                uintptr_t o = atomic_load_explicit(&ha->free_map[i].owner, memory_order_relaxed);
                if (o && !keep(o)) {
                    atomic_store_explicit(&ha->free_map[i].owner, 0, memory_order_relaxed);
                    cleared++;
                }
            }
        }
    return cleared;
}

bool arena_needs_zero(uintptr_t base, uintptr_t npages) {
    bool need = false;
    while (npages > 0) {
        heap_arena *ha = arena_of(base);
        uintptr_t off = base & (ARENA_BYTES - 1);
        uintptr_t zeroed = atomic_load_explicit(&ha->zeroed_base, memory_order_acquire);
        /* Below the mark: used before. Above it: racing allocations just
         * below us raised nothing we own, so it is still zero. */
        if (off < zeroed) need = true;
        uintptr_t limit = off + npages * PAGE_SIZE;
        if (limit > ARENA_BYTES) limit = ARENA_BYTES;
        while (limit > zeroed) {
            if (atomic_compare_exchange_weak_explicit(&ha->zeroed_base, &zeroed, limit,
                                                      memory_order_acq_rel, memory_order_acquire))
                break;
            if (zeroed <= limit && zeroed > off)
                throw("overlapping allocations at %p (zeroed base %p)", (void *)base,
                      (void *)(ha->base + zeroed));
        }
        base += limit - off;
        npages -= (limit - off) / PAGE_SIZE;
    }
    return need;
}

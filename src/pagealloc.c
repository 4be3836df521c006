/*
 * pagealloc.c: the page allocator. Which 8 KiB pages of the heap are free.
 *
 * Go counterpart: mpagealloc.go, mpagealloc_64bit.go, mpallocbits.go,
 * mpagecache.go. Same design, same algorithms:
 *
 *  - One bit per page (1 = in use) in 4 MiB chunks of 512 pages, plus a
 *    parallel bitmap of scavenged pages (released to the OS).
 *  - A radix tree of summaries over the whole address space. A summary of a
 *    run of pages packs three counts: free pages at the start, the longest
 *    free run, free pages at the end. A parent's summary is merged from its
 *    children's, so a search can skip whole regions that cannot fit the
 *    request, and runs that straddle entries are found from start/end.
 *  - Address-ordered first fit: the search walks the tree from the root,
 *    choosing the leftmost entry whose max (or carried-over run) fits, then
 *    searches that chunk's bitmap. search_addr remembers that nothing below
 *    it is free, so most searches start where the last one ended.
 *  - A per-thread page cache: a thread takes a whole 64-page aligned window
 *    (the free pages of one bitmap word) under the heap lock, then carves
 *    small spans from it without the lock.
 *
 * Deviation from Go (layout only): Go keeps all five summary levels as flat
 * arrays reserved over the whole address space (~585 MiB of PROT_NONE
 * reservation on amd64). Here levels 0-2 (16 GiB, 2 GiB, 256 MiB entries)
 * are flat arrays, mapped where the heap is, while level 3 has one entry per
 * 64 MiB arena and level 4 one per chunk, both stored in the arena record
 * beside the chunk bitmaps. The reservation drops to ~4.6 MiB; the fan-out
 * is 8, 8, 4, 16 below the root instead of 8 at every level.
 *
 * Out of memory: only growth asks the OS for anything (summary pages).
 * pages_grow_prepare maps them (a page is marked once Ready, so a refusal
 * leaves nothing half done), after which pages_grow cannot fail; pages_init
 * gives back what it reserved when a reservation is refused. An allocation
 * whose pages the caller cannot make Ready is undone by pages_unalloc: the
 * scavenged bits of allocated pages are left as they were until
 * pages_free, so the pages go back exactly as they came (pages from a page
 * cache by pages_unalloc_cached, with the cache's bits).
 *
 * Locking: everything here runs under the heap lock, except pagecache_alloc
 * which touches only the calling thread's cache. Tests run private
 * instances (struct page_alloc) over reserved address space.
 */
#include "pagealloc.h"

#include <string.h>

#include "arena.h"
#include "fixalloc.h"
#include "os.h"
#include "print.h"

/* Geometry of the radix tree. level_shift: log2 of the bytes covered by one
 * entry; level_bits: log2 of the entries under one parent (level 0: the
 * whole level); level_log_pages: log2 of the pages under one entry. */
static const unsigned level_shift[SUMMARY_LEVELS] = {34, 31, 28, ARENA_SHIFT, CHUNK_SHIFT};
static const unsigned level_bits[SUMMARY_LEVELS] = {HEAP_ADDR_BITS - 34, 34 - 31, 31 - 28, 28 - ARENA_SHIFT,
                                                    ARENA_SHIFT - CHUNK_SHIFT};
static const unsigned level_log_pages[SUMMARY_LEVELS] = {34 - PAGE_SHIFT, 31 - PAGE_SHIFT, 28 - PAGE_SHIFT,
                                                         ARENA_SHIFT - PAGE_SHIFT, CHUNK_SHIFT - PAGE_SHIFT};

_Static_assert(CHUNK_SHIFT - PAGE_SHIFT == 9, "512 pages per chunk");
_Static_assert(ARENA_SHIFT - CHUNK_SHIFT == 4, "16 chunks per arena");

static inline uintptr_t level_len(unsigned l) { return (uintptr_t)1 << (HEAP_ADDR_BITS - level_shift[l]); }
static inline uintptr_t addr_to_level_index(unsigned l, uintptr_t addr) { return addr >> level_shift[l]; }
static inline uintptr_t level_index_to_addr(unsigned l, uintptr_t i) { return i << level_shift[l]; }
static inline uintptr_t chunk_index(uintptr_t addr) { return addr >> CHUNK_SHIFT; }
static inline uintptr_t chunk_base(uintptr_t ci) { return ci << CHUNK_SHIFT; }
static inline unsigned chunk_page_index(uintptr_t addr) {
    return (unsigned)((addr >> PAGE_SHIFT) & (CHUNK_PAGES - 1));
}

/* scav_pages is read without the heap lock by the scavenger's goal
 * (scavenge.c compute_need, a heuristic): written with relaxed atomic
 * stores (always under the heap lock), so that read is not a data race. */
static inline void add_scav_pages(struct page_alloc *p, int64_t n) {
    __atomic_store_n(&p->scav_pages, p->scav_pages + (uint64_t)n, __ATOMIC_RELAXED);
}

static inline struct palloc_chunk *chunk_of(uintptr_t ci) {
    heap_arena *ha = arena_of_chunk(ci);
    return &ha->chunks[ci % CHUNKS_PER_ARENA];
}

static palloc_sum load_sum(struct page_alloc *p, unsigned l, uintptr_t i) {
    if (l < FLAT_LEVELS) return p->summary[l][i];
    heap_arena *ha = atomic_load_explicit(&arena_index[l == 3 ? i : i / CHUNKS_PER_ARENA], memory_order_relaxed);
    if (!ha || ha->palloc != p) return 0;
    return l == 3 ? ha->arena_sum : ha->chunk_sum[i % CHUNKS_PER_ARENA];
}

static void store_sum(struct page_alloc *p, unsigned l, uintptr_t i, palloc_sum s) {
    if (l < FLAT_LEVELS) {
        p->summary[l][i] = s;
        return;
    }
    heap_arena *ha = atomic_load_explicit(&arena_index[l == 3 ? i : i / CHUNKS_PER_ARENA], memory_order_relaxed);
    if (l == 3)
        ha->arena_sum = s;
    else
        ha->chunk_sum[i % CHUNKS_PER_ARENA] = s;
}

/* ---- Bit tricks on 64-page words (Go: mpallocbits.go) ------------------ */

static inline unsigned ctz64(uint64_t x) { return x ? (unsigned)__builtin_ctzll(x) : 64; }
static inline unsigned clz64(uint64_t x) { return x ? (unsigned)__builtin_clzll(x) : 64; }

/* Index of the first run of n consecutive 1 bits in c, or >= 64. Shrinks
 * every run of ones by n-1 from the top, doubling the shift each round. */
unsigned find_bit_range64(uint64_t c, unsigned n) {
    unsigned p = n - 1, k = 1;
    while (p > 0) {
        if (p <= k) {
            c &= c >> (p & 63);
            break;
        }
        c &= c >> (k & 63);
        if (c == 0) return 64;
        p -= k;
        k *= 2;
    }
    return ctz64(c);
}

/* Summary of one chunk bitmap (1 = in use), Go's way (pallocBits.summarize):
 * a first pass joins runs across words from each word's trailing and
 * leading zeros; only if the longest run so far is short can a run inside
 * a word be longer, and those are found by shrinking every run of zeros by
 * the current maximum (doubling shifts, log time per word) and measuring
 * what is left. The obvious run-by-run walk cost ~700 instructions on a
 * chunk with scattered pages, on every free of a span. */
palloc_sum chunk_summarize(const uint64_t alloc[CHUNK_PAGES / 64]) {
    unsigned start = 0, most = 0, cur = 0;
    bool start_set = false;
    for (unsigned i = 0; i < CHUNK_PAGES / 64; i++) {
        uint64_t x = alloc[i];
        if (x == 0) {
            cur += 64;
            continue;
        }
        cur += (unsigned)__builtin_ctzll(x);
        if (!start_set) {
            start = cur;
            start_set = true;
        }
        if (cur > most) most = cur;
        cur = (unsigned)__builtin_clzll(x);
    }
    if (!start_set) return pack_sum(CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES);
    if (cur > most) most = cur;
    if (most >= 64 - 2) return pack_sum(start, most, cur); /* no run inside a word can beat it */
    /* Every word is nonzero here (a zero word would have made most >= 64). */
    for (unsigned i = 0; i < CHUNK_PAGES / 64; i++) {
        uint64_t x = alloc[i];
        x >>= __builtin_ctzll(x); /* the trailing zeros were counted above */
        if ((x & (x + 1)) == 0) continue; /* no zeros below the top ones */
        unsigned p = most, k = 1;         /* shrink runs by p; 1-runs are at least k long */
        for (;;) {
            bool none_left = false;
            while (p > 0) {
                if (p <= k) {
                    x |= x >> (p & 63);
                    none_left = (x & (x + 1)) == 0;
                    break;
                }
                x |= x >> (k & 63);
                if ((x & (x + 1)) == 0) {
                    none_left = true;
                    break;
                }
                p -= k;
                k *= 2;
            }
            if (none_left) break;
            /* The lowest zero run left is longer than most by its length. */
            x >>= ctz64(~x) & 63;
            unsigned j = ctz64(x);
            x >>= j & 63;
            most += j;
            if ((x & (x + 1)) == 0) break;
            p = j;
        }
    }
    return pack_sum(start, most, cur);
}

/* Merge n child summaries, each covering 2^log_max_pages pages. */
palloc_sum merge_summaries(const palloc_sum *sums, unsigned n, unsigned log_max_pages) {
    unsigned start = sum_start(sums[0]), most = sum_max(sums[0]), end = sum_end(sums[0]);
    unsigned full = 1u << log_max_pages;
    for (unsigned i = 1; i < n; i++) {
        unsigned si = sum_start(sums[i]), mi = sum_max(sums[i]), ei = sum_end(sums[i]);
        if (start == i * full) start += si;
        if (end + si > most) most = end + si;
        if (mi > most) most = mi;
        if (ei == full)
            end += full;
        else
            end = ei;
    }
    return pack_sum(start, most, end);
}

static unsigned find1(const uint64_t *b, unsigned search_idx) {
    for (unsigned i = search_idx / 64; i < CHUNK_PAGES / 64; i++) {
        uint64_t x = b[i];
        if (~x == 0) continue;
        return i * 64 + ctz64(~x);
    }
    return UINT32_MAX;
}

static unsigned find_small_n(const uint64_t *b, unsigned npages, unsigned search_idx, unsigned *new_search) {
    unsigned end = 0;
    *new_search = UINT32_MAX;
    for (unsigned i = search_idx / 64; i < CHUNK_PAGES / 64; i++) {
        uint64_t bi = b[i];
        if (~bi == 0) {
            end = 0;
            continue;
        }
        if (*new_search == UINT32_MAX) *new_search = i * 64 + ctz64(~bi);
        unsigned start = ctz64(bi);
        if (end + start >= npages) return i * 64 - end;
        unsigned j = find_bit_range64(~bi, npages);
        if (j < 64) return i * 64 + j;
        end = clz64(bi);
    }
    return UINT32_MAX;
}

static unsigned find_large_n(const uint64_t *b, unsigned npages, unsigned search_idx, unsigned *new_search) {
    unsigned start = UINT32_MAX, size = 0;
    *new_search = UINT32_MAX;
    for (unsigned i = search_idx / 64; i < CHUNK_PAGES / 64; i++) {
        uint64_t x = b[i];
        if (x == ~(uint64_t)0) {
            size = 0;
            continue;
        }
        if (*new_search == UINT32_MAX) *new_search = i * 64 + ctz64(~x);
        if (size == 0) {
            size = clz64(x);
            start = i * 64 + 64 - size;
            continue;
        }
        unsigned s = ctz64(x);
        if (s + size >= npages) return start;
        if (s < 64) {
            size = clz64(x);
            start = i * 64 + 64 - size;
            continue;
        }
        size += 64;
    }
    return size >= npages ? start : UINT32_MAX;
}

/* First run of npages free pages in a chunk at or after search_idx.
 * *new_search_idx: the first free page seen (a new search start). */
unsigned chunk_find(const uint64_t alloc[CHUNK_PAGES / 64], unsigned npages, unsigned search_idx,
                    unsigned *new_search_idx) {
    if (npages == 1) {
        unsigned a = find1(alloc, search_idx);
        *new_search_idx = a;
        return a;
    }
    if (npages <= 64) return find_small_n(alloc, npages, search_idx, new_search_idx);
    return find_large_n(alloc, npages, search_idx, new_search_idx);
}

/* Set or clear bits [i, i+n) of a chunk bitmap. */
static void bits_set_range(uint64_t *b, unsigned i, unsigned n, bool set) {
    while (n > 0) {
        unsigned w = i / 64, off = i % 64;
        unsigned k = 64 - off < n ? 64 - off : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << off;
        if (set)
            b[w] |= mask;
        else
            b[w] &= ~mask;
        i += k;
        n -= k;
    }
}

static unsigned bits_count_range(const uint64_t *b, unsigned i, unsigned n) {
    unsigned count = 0;
    while (n > 0) {
        unsigned w = i / 64, off = i % 64;
        unsigned k = 64 - off < n ? 64 - off : n;
        uint64_t mask = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << off;
        count += (unsigned)__builtin_popcountll(b[w] & mask);
        i += k;
        n -= k;
    }
    return count;
}

/* ---- Summary memory --------------------------------------------------- */

static int map_summary_range(struct page_alloc *p, unsigned l, uintptr_t lo, uintptr_t hi) {
    /* Map the OS pages holding entries [lo, hi) of flat level l. A page is
     * marked only once it is Ready, so a refusal leaves nothing half done. */
    uintptr_t first = round_down((uintptr_t)&p->summary[l][lo], phys_page_size);
    uintptr_t last = round_up((uintptr_t)&p->summary[l][hi], phys_page_size);
    uintptr_t origin = (uintptr_t)p->summary[l];
    for (uintptr_t a = first; a < last; a += phys_page_size) {
        uintptr_t pg = (a - origin) / phys_page_size;
        if (p->mapped[l][pg / 8] & (1u << (pg % 8))) continue;
        if (sys_map((void *)a, phys_page_size, &metastats.pagealloc) != 0) return -1;
        if (sys_used((void *)a, phys_page_size, phys_page_size) != 0) {
            sys_unmap((void *)a, phys_page_size, &metastats.pagealloc);
            return -1;
        }
        p->mapped[l][pg / 8] |= (uint8_t)(1u << (pg % 8));
    }
    return 0;
}

int pages_init(struct page_alloc *p) {
    memset(p, 0, sizeof *p);
    p->search_addr = SEARCH_ADDR_MAX;
    uint8_t *bits = p->mapped_bits;
    for (unsigned l = 0; l < FLAT_LEVELS; l++) {
        uintptr_t bytes = round_up(level_len(l) * sizeof(palloc_sum), phys_page_size);
        void *v = sys_reserve(NULL, bytes);
        if (!v) {
            /* Give back the levels reserved so far: a later retry starts clean. */
            for (unsigned k = 0; k < l; k++)
                sys_free(p->summary[k], round_up(level_len(k) * sizeof(palloc_sum), phys_page_size), OS_RESERVED,
                         NULL);
            memset(p, 0, sizeof *p);
            p->search_addr = SEARCH_ADDR_MAX;
            return -1;
        }
        p->summary[l] = v;
        p->mapped[l] = bits;
        bits += (bytes / phys_page_size + 7) / 8;
        sys_name(v, bytes, "gomalloc page summaries");
    }
    return 0;
}

/* ---- Updates (Go: pageAlloc.update) ------------------------------------ */

/* Debug builds, after every update: the leaf summaries of the chunks of
 * [base, limit] and every entry above them, up to the root, equal their
 * recomputation (what pages_verify does for the whole tree). */
static void check_path(struct page_alloc *p, uintptr_t base, uintptr_t limit) {
    const unsigned leaf = SUMMARY_LEVELS - 1;
    for (uintptr_t c = chunk_index(base); c <= chunk_index(limit); c++) {
        palloc_sum want = chunk_summarize(chunk_of(c)->alloc), have = load_sum(p, leaf, c);
        if (want != have)
            throw("page allocator: chunk %p summary (%u,%u,%u) != bitmap (%u,%u,%u) after an update",
                  (void *)chunk_base(c), sum_start(have), sum_max(have), sum_end(have), sum_start(want),
                  sum_max(want), sum_end(want));
    }
    for (int l = (int)leaf - 1; l >= 0; l--) {
        unsigned child_bits = level_bits[l + 1];
        for (uintptr_t i = addr_to_level_index((unsigned)l, base); i <= addr_to_level_index((unsigned)l, limit); i++) {
            palloc_sum children[16];
            for (unsigned k = 0; k < 1u << child_bits; k++)
                children[k] = load_sum(p, (unsigned)l + 1, (i << child_bits) + k);
            palloc_sum want = merge_summaries(children, 1u << child_bits, level_log_pages[l + 1]);
            palloc_sum have = load_sum(p, (unsigned)l, i);
            if (want != have)
                throw("page allocator: level %d entry %zu summary (%u,%u,%u) != merged (%u,%u,%u) after an update", l,
                      (size_t)i, sum_start(have), sum_max(have), sum_end(have), sum_start(want), sum_max(want),
                      sum_end(want));
        }
    }
}

/* Recompute summaries after the bitmap of [base, base+npages) changed.
 * contig: the change was one contiguous alloc or free, so whole chunks in
 * the middle are known to be fully used (alloc) or fully free. */
static void update(struct page_alloc *p, uintptr_t base, uintptr_t npages, bool contig, bool alloc) {
    uintptr_t limit = base + npages * PAGE_SIZE - 1; /* inclusive */
    uintptr_t sc = chunk_index(base), ec = chunk_index(limit);
    const unsigned leaf = SUMMARY_LEVELS - 1;
    if (sc == ec) {
        palloc_sum x = load_sum(p, leaf, sc);
        palloc_sum y = chunk_summarize(chunk_of(sc)->alloc);
        if (x == y) return;
        store_sum(p, leaf, sc, y);
    } else if (contig) {
        store_sum(p, leaf, sc, chunk_summarize(chunk_of(sc)->alloc));
        palloc_sum whole = alloc ? 0 : pack_sum(CHUNK_PAGES, CHUNK_PAGES, CHUNK_PAGES);
        for (uintptr_t c = sc + 1; c < ec; c++) store_sum(p, leaf, c, whole);
        store_sum(p, leaf, ec, chunk_summarize(chunk_of(ec)->alloc));
    } else {
        for (uintptr_t c = sc; c <= ec; c++) store_sum(p, leaf, c, chunk_summarize(chunk_of(c)->alloc));
    }
    /* Walk up the tree, stopping at the first level that did not change. */
    bool changed = true;
    for (int l = (int)leaf - 1; l >= 0 && changed; l--) {
        changed = false;
        unsigned child_bits = level_bits[l + 1], child_log_pages = level_log_pages[l + 1];
        uintptr_t lo = addr_to_level_index((unsigned)l, base);
        uintptr_t hi = addr_to_level_index((unsigned)l, limit) + 1;
        for (uintptr_t i = lo; i < hi; i++) {
            palloc_sum children[16];
            unsigned n = 1u << child_bits;
            for (unsigned k = 0; k < n; k++) children[k] = load_sum(p, (unsigned)l + 1, (i << child_bits) + k);
            palloc_sum sum = merge_summaries(children, n, child_log_pages);
            if (load_sum(p, (unsigned)l, i) != sum) {
                changed = true;
                store_sum(p, (unsigned)l, i, sum);
            }
        }
    }
    if (DEBUG_CHECKS) check_path(p, base, limit);
}

/* ---- Growth ----------------------------------------------------------- */

/* The chunk range [start, end) with memory once [base, base+size) is added. */
static void grown_range(struct page_alloc *p, uintptr_t base, uintptr_t size, uintptr_t *start, uintptr_t *end) {
    uintptr_t lo = chunk_index(base), hi = chunk_index(base + size);
    *start = p->end && p->start < lo ? p->start : lo;
    *end = p->end > hi ? p->end : hi;
}

int pages_grow_prepare(struct page_alloc *p, uintptr_t base, uintptr_t size) {
    if ((base | size) & (CHUNK_BYTES - 1)) throw("pages_grow: %p+%zu not chunk aligned", (void *)base, (size_t)size);
    uintptr_t limit = base + size, start, end;
    grown_range(p, base, size, &start, &end);
    /* Level 0 is mapped over the whole span of chunks in use, so the root
     * scan can read it freely; deeper levels only where this range is. */
    if (map_summary_range(p, 0, addr_to_level_index(0, chunk_base(start)),
                          addr_to_level_index(0, chunk_base(end) - 1) + 1) != 0)
        return -1;
    for (unsigned l = 1; l < FLAT_LEVELS; l++)
        if (map_summary_range(p, l, addr_to_level_index(l, base), addr_to_level_index(l, limit - 1) + 1) != 0)
            return -1;
    return 0;
}

int pages_grow(struct page_alloc *p, uintptr_t base, uintptr_t size) {
    if (pages_grow_prepare(p, base, size) != 0) return -1;
    uintptr_t limit = base + size;
    grown_range(p, base, size, &p->start, &p->end);
    if (base < p->search_addr) p->search_addr = base;
    for (uintptr_t ci = chunk_index(base); ci < chunk_index(limit); ci++) {
        arena_of_chunk(ci)->palloc = p;
        arena_of_chunk(ci)->grown |= (uint16_t)(1u << (ci % CHUNKS_PER_ARENA));
        struct palloc_chunk *c = chunk_of(ci);
        memset(c->alloc, 0, sizeof c->alloc);
        memset(c->scav, 0xff, sizeof c->scav);
    }
    uintptr_t npages = size / PAGE_SIZE;
    p->free_pages += npages;
    add_scav_pages(p, (int64_t)npages);
    update(p, base, npages, true, false);
    return 0;
}

/* ---- Search (Go: pageAlloc.find) ---------------------------------------- */

struct first_free {
    uintptr_t base, bound; /* inclusive window known to hold the first free page */
};

static void found_free(struct first_free *ff, uintptr_t addr, uintptr_t size) {
    uintptr_t last = addr + size - 1;
    if (ff->base <= addr && last <= ff->bound) {
        ff->base = addr;
        ff->bound = last;
    } else if (!(last < ff->base || ff->bound < addr)) {
        throw("page allocator: free range %p+%zu partially overlaps %p..%p", (void *)addr, (size_t)size,
              (void *)ff->base, (void *)ff->bound);
    }
}

/* Find npages free pages, address-ordered first fit. Returns the address
 * (0 if none) and, in *new_search, the lowest free address seen. */
static uintptr_t find(struct page_alloc *p, uintptr_t npages, uintptr_t *new_search) {
    struct first_free ff = {0, UINTPTR_MAX};
    uintptr_t i = 0;
    unsigned l;
    for (l = 0; l < SUMMARY_LEVELS; l++) {
        uintptr_t entries_per_block = l == 0 ? level_len(0) : (uintptr_t)1 << level_bits[l];
        unsigned log_max_pages = level_log_pages[l];
        if (l > 0) i <<= level_bits[l];
        uintptr_t j0 = 0, jend = entries_per_block;
        if (p->search_addr != SEARCH_ADDR_MAX) {
            uintptr_t si = addr_to_level_index(l, p->search_addr);
            if ((si & ~(entries_per_block - 1)) == i) j0 = si & (entries_per_block - 1);
        }
        if (l == 0) jend = addr_to_level_index(0, chunk_base(p->end) - 1) + 1;
        uintptr_t base = 0, size = 0;
        bool descend = false;
        for (uintptr_t j = j0; j < jend; j++) {
            palloc_sum sum = load_sum(p, l, i + j);
            if (sum == 0) {
                size = 0;
                continue;
            }
            found_free(&ff, level_index_to_addr(l, i + j), ((uintptr_t)1 << log_max_pages) * PAGE_SIZE);
            uintptr_t s = sum_start(sum);
            if (size + s >= npages) {
                if (size == 0) base = j << log_max_pages;
                size += s;
                break;
            }
            if (sum_max(sum) >= npages) {
                i += j;
                descend = true;
                break;
            }
            if (size == 0 || s < ((uintptr_t)1 << log_max_pages)) {
                size = sum_end(sum);
                base = ((j + 1) << log_max_pages) - size;
                continue;
            }
            size += (uintptr_t)1 << log_max_pages;
        }
        if (descend) continue;
        if (size >= npages) {
            *new_search = ff.base;
            return level_index_to_addr(l, i) + base * PAGE_SIZE;
        }
        if (l == 0) {
            *new_search = SEARCH_ADDR_MAX;
            return 0;
        }
        throw("page allocator: bad summary data at level %u index %zu (npages %zu)", l, (size_t)i,
              (size_t)npages);
    }
    /* i is now a chunk index whose max fits: search its bitmap. */
    uintptr_t ci = i;
    unsigned search_idx;
    unsigned j = chunk_find(chunk_of(ci)->alloc, (unsigned)npages, 0, &search_idx);
    if (j == UINT32_MAX)
        throw("page allocator: chunk %p has no run of %zu pages its summary promised", (void *)chunk_base(ci),
              (size_t)npages);
    uintptr_t addr = chunk_base(ci) + (uintptr_t)j * PAGE_SIZE;
    uintptr_t sa = chunk_base(ci) + (uintptr_t)search_idx * PAGE_SIZE;
    found_free(&ff, sa, chunk_base(ci + 1) - sa);
    *new_search = ff.base;
    return addr;
}

/* Mark [base, base+npages) allocated; returns how many were scavenged. The
 * scavenged bits stay as they are (pagealloc.h) until pages_free. */
static uintptr_t alloc_range(struct page_alloc *p, uintptr_t base, uintptr_t npages) {
    uintptr_t limit = base + npages * PAGE_SIZE - 1;
    uintptr_t sc = chunk_index(base), ec = chunk_index(limit);
    unsigned si = chunk_page_index(base), ei = chunk_page_index(limit);
    uintptr_t scav = 0;
    for (uintptr_t c = sc; c <= ec; c++) {
        struct palloc_chunk *ch = chunk_of(c);
        unsigned lo = c == sc ? si : 0, hi = c == ec ? ei : CHUNK_PAGES - 1;
        unsigned n = hi - lo + 1;
        if (DEBUG_CHECKS && bits_count_range(ch->alloc, lo, n) != 0)
            throw("page allocator: allocating pages in use at %p", (void *)(chunk_base(c) + lo * PAGE_SIZE));
        scav += bits_count_range(ch->scav, lo, n);
        bits_set_range(ch->alloc, lo, n, true);
    }
    p->free_pages -= npages;
    add_scav_pages(p, -(int64_t)scav);
    update(p, base, npages, true, true);
    return scav;
}

uintptr_t pages_alloc(struct page_alloc *p, uintptr_t npages, uintptr_t *scav) {
    *scav = 0;
    if (p->search_addr == SEARCH_ADDR_MAX || chunk_index(p->search_addr) >= p->end) return 0;
    uintptr_t addr = 0, new_search = 0;
    if (CHUNK_PAGES - chunk_page_index(p->search_addr) >= npages) {
        /* Try the chunk under search_addr first. */
        uintptr_t ci = chunk_index(p->search_addr);
        if (sum_max(load_sum(p, SUMMARY_LEVELS - 1, ci)) >= npages) {
            unsigned search_idx;
            unsigned j = chunk_find(chunk_of(ci)->alloc, (unsigned)npages, chunk_page_index(p->search_addr),
                                    &search_idx);
            if (j != UINT32_MAX) {
                addr = chunk_base(ci) + (uintptr_t)j * PAGE_SIZE;
                new_search = chunk_base(ci) + (uintptr_t)search_idx * PAGE_SIZE;
            }
        }
    }
    if (!addr) {
        addr = find(p, npages, &new_search);
        if (!addr) {
            if (npages == 1) p->search_addr = SEARCH_ADDR_MAX; /* heap exhausted */
            return 0;
        }
    }
    *scav = alloc_range(p, addr, npages);
    if (new_search > p->search_addr) p->search_addr = new_search;
    return addr;
}

uintptr_t pages_alloc_aligned(struct page_alloc *p, uintptr_t npages, uintptr_t align_pages, uintptr_t *scav) {
    *scav = 0;
    if (align_pages <= 1) return pages_alloc(p, npages, scav);
    if (p->search_addr == SEARCH_ADDR_MAX) return 0;
    uintptr_t new_search;
    uintptr_t addr = find(p, npages + align_pages - 1, &new_search);
    if (!addr) return 0;
    uintptr_t aligned = round_up(addr, align_pages * PAGE_SIZE);
    *scav = alloc_range(p, aligned, npages);
    /* Pages before `aligned` stay free, so new_search (<= addr) is right. */
    if (new_search > p->search_addr) p->search_addr = new_search;
    return aligned;
}

/* Mark [base, base + npages pages) free again. used: the pages were used,
 * so they are not scavenged any more (pages_free); otherwise an allocation
 * is undone and the pages keep the scavenged bits they had (pages_unalloc). */
static void unmark_range(struct page_alloc *p, uintptr_t base, uintptr_t npages, bool used) {
    if (base < p->search_addr) p->search_addr = base;
    uintptr_t limit = base + npages * PAGE_SIZE - 1, scav = 0;
    uintptr_t sc = chunk_index(base), ec = chunk_index(limit);
    unsigned si = chunk_page_index(base), ei = chunk_page_index(limit);
    for (uintptr_t c = sc; c <= ec; c++) {
        struct palloc_chunk *ch = chunk_of(c);
        unsigned lo = c == sc ? si : 0, hi = c == ec ? ei : CHUNK_PAGES - 1;
        if (DEBUG_CHECKS && bits_count_range(ch->alloc, lo, hi - lo + 1) != hi - lo + 1)
            throw("page allocator: freeing free pages at %p", (void *)(chunk_base(c) + lo * PAGE_SIZE));
        bits_set_range(ch->alloc, lo, hi - lo + 1, false);
        if (used)
            bits_set_range(ch->scav, lo, hi - lo + 1, false);
        else
            scav += bits_count_range(ch->scav, lo, hi - lo + 1);
    }
    p->free_pages += npages;
    add_scav_pages(p, (int64_t)scav);
    update(p, base, npages, true, false);
}

void pages_free(struct page_alloc *p, uintptr_t base, uintptr_t npages) { unmark_range(p, base, npages, true); }

void pages_unalloc(struct page_alloc *p, uintptr_t base, uintptr_t npages) { unmark_range(p, base, npages, false); }

/* The heap's scavenged bits of a cache window are the window's when it was
 * filled: pages freed back into the cache since (mheap.c,
 * free_to_page_cache) were used in between, and only the cache knows. Its
 * bits replace the heap's before the pages go back. (With the heap's, a
 * page holding data came back marked scavenged, so the next allocation of
 * it skipped zeroing, and HeapReleased counted it.) */
void pages_unalloc_cached(struct page_alloc *p, uintptr_t base, uintptr_t npages, uint64_t scav_bits) {
    struct palloc_chunk *ch = chunk_of(chunk_index(base));
    unsigned i = chunk_page_index(base), w = i / 64, sh = i % 64;
    if (npages > 64 - sh) throw("pages_unalloc_cached: %zu pages at %p cross a cache window", (size_t)npages, (void *)base);
    uint64_t mask = (npages == 64 ? ~(uint64_t)0 : (((uint64_t)1 << npages) - 1)) << sh;
    ch->scav[w] = (ch->scav[w] & ~mask) | ((scav_bits << sh) & mask);
    unmark_range(p, base, npages, false);
}

bool pages_extend(struct page_alloc *p, uintptr_t base, uintptr_t npages, uintptr_t extra, uintptr_t *scav) {
    uintptr_t start = base + npages * PAGE_SIZE;
    uintptr_t limit = start + extra * PAGE_SIZE - 1;
    if (limit < start || (limit >> HEAP_ADDR_BITS)) return false;
    for (uintptr_t c = chunk_index(start); c <= chunk_index(limit); c++) {
        heap_arena *ha = arena_of_chunk(c);
        if (!ha || ha->palloc != p) return false;
        struct palloc_chunk *ch = chunk_of(c);
        unsigned lo = c == chunk_index(start) ? chunk_page_index(start) : 0;
        unsigned hi = c == chunk_index(limit) ? chunk_page_index(limit) : CHUNK_PAGES - 1;
        /* Chunks never grown keep all bits set, so they count as in use. */
        if (bits_count_range(ch->alloc, lo, hi - lo + 1) != 0) return false;
    }
    *scav = alloc_range(p, start, extra);
    return true;
}

/* ---- Per-thread page cache (Go: mpagecache.go) ----------------------- */

page_cache pages_alloc_to_cache(struct page_alloc *p) {
    page_cache c = {0, 0, 0};
    if (p->search_addr == SEARCH_ADDR_MAX || chunk_index(p->search_addr) >= p->end) return c;
    uintptr_t ci = chunk_index(p->search_addr);
    struct palloc_chunk *ch;
    unsigned j;
    if (load_sum(p, SUMMARY_LEVELS - 1, ci) != 0) {
        ch = chunk_of(ci);
        unsigned ignore;
        j = chunk_find(ch->alloc, 1, chunk_page_index(p->search_addr), &ignore);
        if (j == UINT32_MAX) throw("page allocator: bad summary for chunk %p", (void *)chunk_base(ci));
    } else {
        uintptr_t ignore;
        uintptr_t addr = find(p, 1, &ignore);
        if (!addr) {
            p->search_addr = SEARCH_ADDR_MAX;
            return c;
        }
        ci = chunk_index(addr);
        ch = chunk_of(ci);
        j = chunk_page_index(addr);
    }
    unsigned w = j / 64;
    c.base = chunk_base(ci) + (uintptr_t)w * 64 * PAGE_SIZE;
    c.cache = ~ch->alloc[w];
    c.scav = ch->scav[w] & c.cache;
    ch->alloc[w] = ~(uint64_t)0; /* the scavenged bits stay: see pages_unalloc */
    unsigned n = (unsigned)__builtin_popcountll(c.cache);
    p->free_pages -= n;
    add_scav_pages(p, -(int64_t)__builtin_popcountll(c.scav));
    update(p, c.base, PAGE_CACHE_PAGES, false, true);
    /* Every page of the window now belongs to the cache; continue after it
     * (Go points at the window's last page so the address stays mapped). */
    p->search_addr = c.base + (PAGE_CACHE_PAGES - 1) * PAGE_SIZE;
    return c;
}

void pagecache_flush(struct page_alloc *p, page_cache *c) {
    if (!c->cache) {
        *c = (page_cache){0, 0, 0};
        return;
    }
    uintptr_t ci = chunk_index(c->base);
    unsigned w = chunk_page_index(c->base) / 64;
    struct palloc_chunk *ch = chunk_of(ci);
    if (DEBUG_CHECKS && (ch->alloc[w] & c->cache) != c->cache) throw("page cache: flushing pages not in use");
    ch->alloc[w] &= ~c->cache;
    ch->scav[w] = (ch->scav[w] & ~c->cache) | c->scav;
    p->free_pages += (unsigned)__builtin_popcountll(c->cache);
    add_scav_pages(p, __builtin_popcountll(c->scav));
    if (c->base < p->search_addr) p->search_addr = c->base;
    update(p, c->base, PAGE_CACHE_PAGES, false, false);
    *c = (page_cache){0, 0, 0};
}

uintptr_t pagecache_alloc(page_cache *c, uintptr_t npages, uint64_t *scav_bits) {
    if (c->cache == 0) return 0;
    unsigned i;
    uint64_t mask;
    if (npages == 1) {
        i = ctz64(c->cache);
        mask = (uint64_t)1 << i;
    } else {
        i = find_bit_range64(c->cache, (unsigned)npages);
        if (i >= 64) return 0;
        mask = (((uint64_t)1 << npages) - 1) << i;
    }
    *scav_bits = (c->scav & mask) >> i;
    c->cache &= ~mask;
    c->scav &= ~mask;
    return c->base + (uintptr_t)i * PAGE_SIZE;
}

/* ---- Scavenging support (Go: mgcscavenge.go) -------------------------- */

/* Pages per huge page (a region). */
#define HUGE_PAGES_PER_REGION (2u << 20 >> PAGE_SHIFT)

/* May a non-forced scavenge release free pages of the region holding page
 * `page` of chunk ch? Not if the region is dense (Go: scavChunkHiOccFrac,
 * 496/512 in use): it is likely to fill again. In a chunk marked for huge
 * pages (huge), not if any page of it is in use: khugepaged collapses a
 * marked region back into a whole huge page while at most max_ptes_none
 * (511 by default) of its 512 small pages are missing, so a partial
 * release would be undone behind the books' back (Go met this, #64332). */
static bool region_releasable(const struct palloc_chunk *ch, bool huge, unsigned page) {
    unsigned first = page / HUGE_PAGES_PER_REGION * HUGE_PAGES_PER_REGION;
    unsigned used = bits_count_range(ch->alloc, first, HUGE_PAGES_PER_REGION);
    return huge ? used == 0 : used * 32 < HUGE_PAGES_PER_REGION * 31;
}

bool pages_region_resident(struct page_alloc *p, uintptr_t addr) {
    uintptr_t ci = chunk_index(addr);
    heap_arena *ha = arena_of_chunk(ci);
    if (!ha || ha->palloc != p || !(ha->grown >> (ci % CHUNKS_PER_ARENA) & 1) ||
        addr & (((uintptr_t)HUGE_PAGES_PER_REGION << PAGE_SHIFT) - 1))
        return false;
    const struct palloc_chunk *ch = chunk_of(ci);
    unsigned first = chunk_page_index(addr);
    for (unsigned w = first / 64; w < (first + HUGE_PAGES_PER_REGION) / 64; w++)
        if (ch->scav[w] & ~ch->alloc[w]) return false; /* scav is meaningful for free pages only */
    return true;
}

uintptr_t pages_scavenge_claim(struct page_alloc *p, uintptr_t max_pages, bool force, uintptr_t *cursor,
                               uintptr_t *npages) {
    *npages = 0;
    if (!p->end || !max_pages) return 0;
    uintptr_t top = *cursor;
    if (top > chunk_base(p->end)) top = chunk_base(p->end);
    /* Runs must be whole OS pages (several of ours with 16K/64K pages). */
    unsigned unit = phys_page_size > PAGE_SIZE ? (unsigned)(phys_page_size / PAGE_SIZE) : 1;
    while (top > chunk_base(p->start)) {
        uintptr_t ci = chunk_index(top - 1);
        heap_arena *ha = arena_of_chunk(ci);
        if (!ha || ha->palloc != p) {
            top = chunk_base(ci);
            continue;
        }
        struct palloc_chunk *ch = chunk_of(ci);
        bool huge = ha->huge >> (ci % CHUNKS_PER_ARENA) & 1;
        unsigned limit = (unsigned)((top - 1 - chunk_base(ci)) >> PAGE_SHIFT) + 1; /* pages [0, limit) */
        /* The highest free, unscavenged page below limit, region by region
         * (a region is one 2 MiB huge page), skipping regions that are not
         * releasable. */
        int hi = -1;
        for (int r = (int)((limit - 1) / HUGE_PAGES_PER_REGION); r >= 0 && hi < 0; r--) {
            unsigned first = (unsigned)r * HUGE_PAGES_PER_REGION;
            unsigned end = first + HUGE_PAGES_PER_REGION < limit ? first + HUGE_PAGES_PER_REGION : limit;
            if (!force && !region_releasable(ch, huge, first)) continue;
            for (int w = (int)((end - 1) / 64); w >= (int)(first / 64) && hi < 0; w--) {
                uint64_t cand = ~ch->alloc[w] & ~ch->scav[w];
                unsigned wend = end - (unsigned)w * 64; /* bits [0, wend) of this word are eligible */
                if (wend < 64) cand &= ((uint64_t)1 << wend) - 1;
                if (cand) hi = w * 64 + 63 - __builtin_clzll(cand);
            }
        }
        if (hi < 0) {
            top = chunk_base(ci);
            continue;
        }
        /* Extend the run downwards, up to max_pages, not into regions that
         * are not releasable. */
        unsigned lo = (unsigned)hi;
        while (lo > 0 && (unsigned)hi - lo + 1 < max_pages) {
            unsigned q = lo - 1;
            if ((ch->alloc[q / 64] | ch->scav[q / 64]) >> (q % 64) & 1) break;
            if (!force && q % HUGE_PAGES_PER_REGION == HUGE_PAGES_PER_REGION - 1 && !region_releasable(ch, huge, q))
                break;
            lo = q;
        }
        unsigned start = (unsigned)round_up(lo, unit), end = (unsigned)round_down((unsigned)hi + 1, unit);
        if (end <= start) {
            top = chunk_base(ci) + (uintptr_t)lo * PAGE_SIZE; /* too small for an OS page */
            continue;
        }
        uintptr_t base = chunk_base(ci) + (uintptr_t)start * PAGE_SIZE, n = end - start;
        bits_set_range(ch->alloc, start, (unsigned)n, true);
        p->free_pages -= n;
        p->claimed_pages += n;
        update(p, base, n, true, true);
        *npages = n;
        *cursor = base;
        return base;
    }
    *cursor = chunk_base(p->start);
    return 0;
}

void pages_scavenge_release(struct page_alloc *p, uintptr_t base, uintptr_t npages, bool released) {
    struct palloc_chunk *ch = chunk_of(chunk_index(base));
    unsigned lo = chunk_page_index(base);
    if (DEBUG_CHECKS && (p->claimed_pages < npages || bits_count_range(ch->alloc, lo, (unsigned)npages) != npages))
        throw("page allocator: giving back %zu scavenged pages at %p that were not claimed", (size_t)npages,
              (void *)base);
    bits_set_range(ch->alloc, lo, (unsigned)npages, false);
    if (released) bits_set_range(ch->scav, lo, (unsigned)npages, true);
    p->free_pages += npages;
    if (released) add_scav_pages(p, (int64_t)npages);
    p->claimed_pages -= npages;
    if (base < p->search_addr) p->search_addr = base;
    update(p, base, npages, true, false);
}

/* ---- Consistency check ------------------------------------------------ */

/* Is flat summary entry i of level l in a mapped page? */
static bool flat_entry_mapped(const struct page_alloc *p, unsigned l, uintptr_t i) {
    uintptr_t pg = ((uintptr_t)&p->summary[l][i] - (uintptr_t)p->summary[l]) / phys_page_size;
    return p->mapped[l][pg / 8] & (1u << (pg % 8));
}

/* Recompute every summary from the bitmaps and compare; count free and
 * scavenged pages. Returns 0, or -1 with the first mismatch described in
 * why. Heap lock held (or the test's exclusive use of p). */
int pages_verify(struct page_alloc *p, char *why, size_t cap) {
#define BAD(...)                                                                                           \
    do {                                                                                                   \
        format_buf(why, cap, __VA_ARGS__);                                                                 \
        return -1;                                                                                         \
    } while (0)
    if (!p->end) return 0;
    uintptr_t free_pages = 0, scav_pages = 0;
    for (uintptr_t ci = p->start; ci < p->end; ci++) {
        heap_arena *ha = arena_of_chunk(ci);
        if (!ha || ha->palloc != p) continue;
        struct palloc_chunk *ch = chunk_of(ci);
        palloc_sum want = chunk_summarize(ch->alloc);
        palloc_sum have = load_sum(p, SUMMARY_LEVELS - 1, ci);
        /* Chunks never grown have every bit set and summary 0. */
        if (want != have)
            BAD("pages: chunk %p summary (%u,%u,%u) != bitmap (%u,%u,%u)", (void *)chunk_base(ci), sum_start(have),
                sum_max(have), sum_end(have), sum_start(want), sum_max(want), sum_end(want));
        bool grown = ha->grown >> (ci % CHUNKS_PER_ARENA) & 1;
        for (unsigned w = 0; w < CHUNK_PAGES / 64; w++) {
            free_pages += (uintptr_t)__builtin_popcountll(~ch->alloc[w]);
            scav_pages += (uintptr_t)__builtin_popcountll(~ch->alloc[w] & ch->scav[w]);
            /* scavenged bits of pages in use are stale (pages_unalloc) */
            if (!grown && ~ch->alloc[w])
                BAD("pages: chunk %p was never grown but has free pages", (void *)chunk_base(ci));
        }
    }
    for (int l = SUMMARY_LEVELS - 2; l >= 0; l--) {
        uintptr_t lo = addr_to_level_index((unsigned)l, chunk_base(p->start));
        uintptr_t hi = addr_to_level_index((unsigned)l, chunk_base(p->end) - 1) + 1;
        unsigned child_bits = level_bits[l + 1];
        for (uintptr_t i = lo; i < hi; i++) {
            if (l >= FLAT_LEVELS) {
                heap_arena *ha = arena_of_chunk(level_index_to_addr((unsigned)l, i) >> CHUNK_SHIFT);
                if (!ha || ha->palloc != p) continue;
            }
            /* Flat entries outside mapped pages are never read (a refused
             * reservation can leave a parent's page mapped and its
             * children's not: those children count as in use). */
            if (l < FLAT_LEVELS && !flat_entry_mapped(p, (unsigned)l, i)) continue;
            palloc_sum children[16];
            unsigned n = 1u << child_bits;
            for (unsigned k = 0; k < n; k++) {
                uintptr_t ck = (i << child_bits) + k;
                children[k] = l + 1 < FLAT_LEVELS && !flat_entry_mapped(p, (unsigned)l + 1, ck)
                                  ? 0
                                  : load_sum(p, (unsigned)l + 1, ck);
            }
            palloc_sum want = merge_summaries(children, n, level_log_pages[l + 1]);
            palloc_sum have = load_sum(p, (unsigned)l, i);
            if (want != have)
                BAD("pages: level %d entry %zu summary (%u,%u,%u) != merged (%u,%u,%u)", l, (size_t)i,
                    sum_start(have), sum_max(have), sum_end(have), sum_start(want), sum_max(want), sum_end(want));
        }
    }
    if (free_pages != p->free_pages || scav_pages != p->scav_pages)
        BAD("pages: bitmaps hold %zu free (%zu scavenged) pages, counters say %zu (%zu)", (size_t)free_pages,
            (size_t)scav_pages, (size_t)p->free_pages, (size_t)p->scav_pages);
#undef BAD
    return 0;
}

void pages_check(struct page_alloc *p) {
    char why[256];
    if (pages_verify(p, why, sizeof why) != 0) throw("%s", why);
}

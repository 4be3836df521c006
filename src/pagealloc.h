/*
 * pagealloc.h: which 8 KiB pages of the heap are free (interface of
 * pagealloc.c). See pagealloc.c for the design.
 * Go counterpart: mpagealloc.go, mpallocbits.go, mpagecache.go.
 */
#ifndef GOMALLOC_PAGEALLOC_H
#define GOMALLOC_PAGEALLOC_H

#include "internal.h"

/* A summary of a run of pages: free pages at the start, the longest free
 * run anywhere, free pages at the end; 21 bits each. Bit 63 set means all
 * three equal 2^21 (a fully free root entry). 0 means fully in use. */
typedef uint64_t palloc_sum;

#define SUM_BITS 21
#define SUM_MAX ((uint64_t)1 << SUM_BITS)
#define SUM_MASK (SUM_MAX - 1)

static inline palloc_sum pack_sum(unsigned start, unsigned max, unsigned end) {
    if (max == SUM_MAX) return (palloc_sum)1 << 63;
    return (palloc_sum)(start & SUM_MASK) | (palloc_sum)(max & SUM_MASK) << SUM_BITS |
           (palloc_sum)(end & SUM_MASK) << (2 * SUM_BITS);
}
static inline unsigned sum_start(palloc_sum s) { return s >> 63 ? SUM_MAX : (unsigned)(s & SUM_MASK); }
static inline unsigned sum_max(palloc_sum s) {
    return s >> 63 ? SUM_MAX : (unsigned)((s >> SUM_BITS) & SUM_MASK);
}
static inline unsigned sum_end(palloc_sum s) {
    return s >> 63 ? SUM_MAX : (unsigned)((s >> (2 * SUM_BITS)) & SUM_MASK);
}

/* Per 4 MiB chunk: one bit per page, 1 = allocated; 1 = scavenged. The
 * scavenged bit means something for free pages only: allocation leaves it
 * as it was (so a failed sys_used can be undone exactly, pages_unalloc) and
 * pages_free clears it. */
struct palloc_chunk {
    uint64_t alloc[CHUNK_PAGES / 64];
    uint64_t scav[CHUNK_PAGES / 64];
};

/* Radix tree of summaries: 5 levels. Levels 0..2 are flat arrays over the
 * whole address space (reserved, mapped where the heap is); level 3 has
 * one entry per arena and level 4 one per chunk, both kept in the arena
 * record next to the chunk bitmaps. */
#define SUMMARY_LEVELS 5
#define FLAT_LEVELS 3

/* Per-thread cache of up to 64 pages in one 64-page aligned window. */
typedef struct page_cache {
    uintptr_t base;  /* address of the window, 0 if none */
    uint64_t cache;  /* 1 = free page owned by this cache */
    uint64_t scav;   /* 1 = that page is scavenged (Prepared) */
} page_cache;

/* Bitmaps of the mapped OS pages of the flat levels (entry shifts 34, 31,
 * 28), sized for the smallest OS page (4 KiB): 2^(HEAP_ADDR_BITS-shift-12)
 * bytes per level, 146 bytes in all on x86-64. */
#define SUMMARY_MAPPED_BYTES                                                                      \
    ((1u << (HEAP_ADDR_BITS - 34 - 12)) + (1u << (HEAP_ADDR_BITS - 31 - 12)) +                   \
     (1u << (HEAP_ADDR_BITS - 28 - 12)))

struct page_alloc {
    palloc_sum *summary[FLAT_LEVELS]; /* flat levels, reserved PROT_NONE */
    uint8_t *mapped[FLAT_LEVELS];     /* per level: bitmap of mapped OS pages (in mapped_bits) */
    uint8_t mapped_bits[SUMMARY_MAPPED_BYTES];
    uintptr_t search_addr;            /* no free page below this address */
    uintptr_t start, end;             /* chunk indices with memory: [start, end) */
    uint64_t free_pages;              /* free pages in the bitmaps (not in page caches) */
    uint64_t scav_pages;              /* free pages that are scavenged (relaxed atomic
                                         stores: the scavenger reads it unlocked) */
    uint64_t claimed_pages;           /* pages claimed by scavengers and not yet given
                                         back: in use in the bitmaps, free to the heap */
};

#define SEARCH_ADDR_MAX UINTPTR_MAX

/* All of these need the heap lock (or a test's exclusive use of p).
 * pages_init: reserve the flat summary levels; -1 (ENOMEM) with nothing
 * kept when the OS refuses. */
int pages_init(struct page_alloc *p);
/* Map the summary memory that growing by [base, base+size) needs; -1
 * (ENOMEM) when the OS refuses, keeping what it mapped (zeros, harmless).
 * Once it succeeded, pages_grow of that range cannot fail. */
int pages_grow_prepare(struct page_alloc *p, uintptr_t base, uintptr_t size);
/* Add [base, base+size) (chunk aligned, Prepared) as free, scavenged pages;
 * -1 (ENOMEM) with nothing added if its summary memory cannot be mapped. */
int pages_grow(struct page_alloc *p, uintptr_t base, uintptr_t size);
/* Returns the address of npages free pages (now allocated) or 0; *scav is
 * set to the number of those pages that were scavenged. */
uintptr_t pages_alloc(struct page_alloc *p, uintptr_t npages, uintptr_t *scav);
/* The same with the address aligned to align_pages pages (a power of two). */
uintptr_t pages_alloc_aligned(struct page_alloc *p, uintptr_t npages, uintptr_t align_pages,
                              uintptr_t *scav);
/* Free pages that were used (they are no longer scavenged). */
void pages_free(struct page_alloc *p, uintptr_t base, uintptr_t npages);
/* Undo an allocation whose pages were never used (sys_used failed): they
 * become free again with the scavenged bits they had before. */
void pages_unalloc(struct page_alloc *p, uintptr_t base, uintptr_t npages);
/* The same for pages a page cache handed out (pagecache_alloc), which
 * reported their scavenged bits in scav_bits (bit 0: base). */
void pages_unalloc_cached(struct page_alloc *p, uintptr_t base, uintptr_t npages, uint64_t scav_bits);
/* Allocate the extra pages right after [base, base+npages) if all free. */
bool pages_extend(struct page_alloc *p, uintptr_t base, uintptr_t npages, uintptr_t extra,
                  uintptr_t *scav);
page_cache pages_alloc_to_cache(struct page_alloc *p);
void pagecache_flush(struct page_alloc *p, page_cache *c);
/* Scavenging (Go: scavengeOne): find the highest run of free, unscavenged
 * pages below *cursor, at most max_pages long, and claim it (mark it in use
 * so nobody allocates it while the lock is dropped for the system call).
 * Unless force, 2 MiB regions that are nearly full (>= 96.9% in use) are
 * skipped, so dense huge pages are not split, and in chunks marked for huge
 * pages every region with a page in use (pagealloc.c, region_releasable).
 * Returns the base (0 if none)
 * and moves *cursor down to it. */
uintptr_t pages_scavenge_claim(struct page_alloc *p, uintptr_t max_pages, bool force, uintptr_t *cursor,
                               uintptr_t *npages);
/* Is every free page of the 2 MiB region at addr (aligned) unscavenged
 * (heap lock)? Then each page of it is in use or was used and not released
 * since: turning the region into a huge page adds to the resident set only
 * allocated pages nobody has touched yet (a page cache's, the tail of a
 * new span or large object) and undoes no release the books count. */
bool pages_region_resident(struct page_alloc *p, uintptr_t addr);
/* Give back a claimed run: scavenged if released, else as it was (free,
 * not scavenged: the OS refused to release it). */
void pages_scavenge_release(struct page_alloc *p, uintptr_t base, uintptr_t npages, bool released);

/* Consistency check of every summary against its recomputation, of the
 * free and scavenged counters against the bitmaps, and of the scavenged
 * bits (free pages only). pages_verify returns 0 or -1 with the first
 * problem written into why; pages_check throws. */
int pages_verify(struct page_alloc *p, char *why, size_t cap);
void pages_check(struct page_alloc *p);

/* Lock-free, owner only. */
/* npages (< 64) pages of the cache, or 0; *scav_bits: which of them are
 * scavenged (bit 0: the first page). */
uintptr_t pagecache_alloc(page_cache *c, uintptr_t npages, uint64_t *scav_bits);
static inline bool pagecache_empty(const page_cache *c) { return c->cache == 0; }

/* Bit helpers shared with the tests. */
unsigned find_bit_range64(uint64_t c, unsigned n);
palloc_sum chunk_summarize(const uint64_t alloc[CHUNK_PAGES / 64]);
palloc_sum merge_summaries(const palloc_sum *sums, unsigned n, unsigned log_max_pages);
unsigned chunk_find(const uint64_t alloc[CHUNK_PAGES / 64], unsigned npages, unsigned search_idx,
                    unsigned *new_search_idx);

#endif /* GOMALLOC_PAGEALLOC_H */

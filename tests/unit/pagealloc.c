/*
 * Unit test of the page allocator (src/pagealloc.c) against a slow,
 * obviously correct reference model: one bool per page, address-ordered
 * first fit by linear scan. Random sequences of alloc / aligned alloc /
 * extend / free / page-cache refill, alloc and flush are applied to both;
 * every result (address, scavenged count) must agree, and after every step
 * every summary of the radix tree must equal its recomputation (pages_check).
 */
#include "testlib.h"

#include "arena.h"
#include "malloc.h"
#include "mheap.h"
#include "pagealloc.h"

/* ---- bit helpers against naive versions -------------------------------- */

static unsigned naive_range64(uint64_t c, unsigned n) {
    for (unsigned i = 0; i + n <= 64; i++) {
        unsigned k = 0;
        while (k < n && (c >> (i + k) & 1)) k++;
        if (k == n) return i;
    }
    return 64;
}

TEST(find_bit_range64_matches_naive) {
    uint64_t r = 1;
    for (int iter = 0; iter < 200000; iter++) {
        uint64_t c = tl_rand(&r);
        if (iter % 3 == 0) c |= tl_rand(&r); /* denser ones */
        if (iter % 5 == 0) c &= tl_rand(&r);
        unsigned n = 1 + (unsigned)(tl_rand(&r) % 64);
        unsigned want = naive_range64(c, n), got = find_bit_range64(c, n);
        if (want == 64) CHECKF(got >= 64, "c=%#lx n=%u got %u", (unsigned long)c, n, got);
        else CHECKF(got == want, "c=%#lx n=%u want %u got %u", (unsigned long)c, n, want, got);
    }
}

static palloc_sum naive_summary(const uint64_t *b) {
    unsigned start = 0, max = 0, cur = 0, i;
    for (i = 0; i < CHUNK_PAGES && !(b[i / 64] >> (i % 64) & 1); i++) start++;
    for (i = 0; i < CHUNK_PAGES; i++) {
        if (b[i / 64] >> (i % 64) & 1) cur = 0;
        else if (++cur > max) max = cur;
    }
    unsigned end = 0;
    for (i = CHUNK_PAGES; i > 0 && !(b[(i - 1) / 64] >> ((i - 1) % 64) & 1); i--) end++;
    return pack_sum(start, max, end);
}

TEST(chunk_summarize_matches_naive) {
    uint64_t r = 7;
    uint64_t b[CHUNK_PAGES / 64];
    for (int iter = 0; iter < 30000; iter++) {
        int mode = iter % 6;
        for (int w = 0; w < CHUNK_PAGES / 64; w++) {
            uint64_t x = tl_rand(&r);
            if (mode == 1) x &= tl_rand(&r) & tl_rand(&r);    /* mostly free */
            if (mode == 2) x |= tl_rand(&r) | tl_rand(&r);    /* mostly used */
            if (mode == 3) x = (tl_rand(&r) % 3 == 0) ? ~0ull : (tl_rand(&r) % 2 ? 0 : x);
            if (mode >= 4) { /* used, with a few free runs of every length inside words */
                x = ~0ull;
                for (int k = (int)(tl_rand(&r) % 4); k > 0; k--) {
                    unsigned len = 1 + (unsigned)(tl_rand(&r) % (mode == 4 ? 8 : 63)), at = (unsigned)(tl_rand(&r) % 64);
                    uint64_t run = len >= 64 ? ~0ull : ((1ull << len) - 1);
                    x &= ~(run << at);
                }
            }
            b[w] = x;
        }
        palloc_sum want = naive_summary(b), got = chunk_summarize(b);
        CHECKF(want == got, "iter %d: want (%u,%u,%u) got (%u,%u,%u)", iter, sum_start(want), sum_max(want),
               sum_end(want), sum_start(got), sum_max(got), sum_end(got));
    }
}

TEST(summary_packing) {
    palloc_sum s = pack_sum(3, 100, 7);
    CHECK(sum_start(s) == 3 && sum_max(s) == 100 && sum_end(s) == 7);
    s = pack_sum(SUM_MAX, SUM_MAX, SUM_MAX);
    CHECK(sum_start(s) == SUM_MAX && sum_max(s) == SUM_MAX && sum_end(s) == SUM_MAX);
    CHECK(pack_sum(0, 0, 0) == 0);
    palloc_sum kids[2] = {pack_sum(512, 512, 512), pack_sum(10, 20, 30)};
    palloc_sum m = merge_summaries(kids, 2, 9);
    CHECKF(sum_start(m) == 522 && sum_max(m) == 522 && sum_end(m) == 30, "(%u,%u,%u)", sum_start(m), sum_max(m),
           sum_end(m));
}

/* ---- the allocator against the model ----------------------------------- */

#define MAXPAGES (3 * PAGES_PER_ARENA)
static struct page_alloc pa;
static uintptr_t region_base[2];       /* two separate reservations */
static uintptr_t region_pages[2];
static unsigned char used[MAXPAGES];   /* model: 1 = in use */
static unsigned char scav[MAXPAGES];   /* model: 1 = scavenged */
static unsigned char present[MAXPAGES];/* model: page belongs to the heap */

/* Model page index <-> address. Region 0 pages first, then region 1. */
static uintptr_t page_addr(size_t i) {
    return i < region_pages[0] ? region_base[0] + i * PAGE_SIZE : region_base[1] + (i - region_pages[0]) * PAGE_SIZE;
}
static long page_index(uintptr_t a) {
    if (a >= region_base[0] && a < region_base[0] + region_pages[0] * PAGE_SIZE) return (long)((a - region_base[0]) / PAGE_SIZE);
    if (a >= region_base[1] && a < region_base[1] + region_pages[1] * PAGE_SIZE)
        return (long)(region_pages[0] + (a - region_base[1]) / PAGE_SIZE);
    return -1;
}
static size_t npages_total(void) { return region_pages[0] + region_pages[1]; }

/* First fit in address order; runs may not cross between regions unless
 * they are adjacent in memory. The model orders pages by address. */
static size_t order[MAXPAGES];
static void build_order(void) {
    size_t n = npages_total(), k = 0;
    int first = region_base[0] < region_base[1] ? 0 : 1;
    for (int r = 0; r < 2; r++) {
        int reg = r == 0 ? first : 1 - first;
        size_t off = reg == 0 ? 0 : region_pages[0];
        for (size_t i = 0; i < region_pages[reg]; i++) order[k++] = off + i;
    }
    (void)n;
}

static long model_alloc(size_t n, size_t align_pages, unsigned *scav_count) {
    size_t total = npages_total();
    for (size_t k = 0; k < total; k++) {
        uintptr_t a = page_addr(order[k]);
        if (align_pages > 1 && (a / PAGE_SIZE) % align_pages) continue;
        size_t j = 0;
        while (j < n && k + j < total && present[order[k + j]] && !used[order[k + j]] &&
               page_addr(order[k + j]) == a + j * PAGE_SIZE)
            j++;
        if (j == n) {
            unsigned sc = 0;
            for (size_t q = 0; q < n; q++) {
                used[order[k + q]] = 1;
                sc += scav[order[k + q]];
                scav[order[k + q]] = 0;
            }
            *scav_count = sc;
            return (long)order[k];
        }
    }
    return -1;
}

struct run { uintptr_t base, n; };
static struct run runs[100000];
static size_t nruns;

static int check_alloc(size_t n, size_t align_pages) {
    unsigned msc = 0;
    long want = model_alloc(n, align_pages, &msc);
    uintptr_t sc = 0;
    uintptr_t got = align_pages > 1 ? pages_alloc_aligned(&pa, n, align_pages, &sc) : pages_alloc(&pa, n, &sc);
    if (want < 0) {
        /* The real allocator may find nothing where the model finds nothing;
         * aligned allocation over-asks, so it may also fail where an exact
         * aligned fit exists. */
        CHECKR(got == 0 || align_pages > 1, "alloc(%zu) found %p, model found nothing", n, (void *)got);
        if (got) { /* aligned success the model missed cannot happen */
            CHECKR(0, "aligned alloc(%zu, %zu) found %p, model none", n, align_pages, (void *)got);
        }
        return 1;
    }
    if (align_pages > 1) {
        if (!got) {
            /* undo the model's allocation: aligned search over-asks */
            for (size_t q = 0; q < n; q++) { used[want + q] = 0; }
            return 1;
        }
        long gi = page_index(got);
        CHECKR(gi >= 0 && (got / PAGE_SIZE) % align_pages == 0, "aligned alloc gave %p", (void *)got);
        /* Over-asking may pick a later fit than the model's first aligned fit:
         * move the model's allocation to where the real one went. */
        if (gi != want) {
            for (size_t q = 0; q < n; q++) { used[want + q] = 0; }
            for (size_t q = 0; q < n; q++) {
                CHECKR(present[gi + q] && !used[gi + q], "aligned alloc %p overlaps", (void *)got);
                used[gi + q] = 1;
                scav[gi + q] = 0;
            }
            runs[nruns++] = (struct run){got, n};
            return 1;
        }
    }
    CHECKR(got == page_addr((size_t)want), "alloc(%zu): got %p want %p", n, (void *)got, (void *)page_addr((size_t)want));
    if (align_pages <= 1) CHECKR(sc == msc, "alloc(%zu) at %p: scav %zu want %u", n, (void *)got, (size_t)sc, msc);
    runs[nruns++] = (struct run){got, n};
    return 1;
}

static void model_free(uintptr_t base, uintptr_t n) {
    long i = page_index(base);
    for (uintptr_t q = 0; q < n; q++) used[i + q] = 0;
}

TEST(page_allocator_against_model) {
    malloc_init();
    CHECK(pages_init(&pa) == 0);
    lock(&mheap_.lock);
    uintptr_t got0 = 0, got1 = 0;
    region_base[0] = arena_reserve(2 * ARENA_BYTES, &got0);
    region_base[1] = arena_reserve(ARENA_BYTES, &got1);
    unlock(&mheap_.lock);
    CHECK(region_base[0] && region_base[1]);
    /* Grow only part of each region, in chunk units, to exercise partly
     * grown arenas and the gaps between regions. */
    region_pages[0] = 2 * PAGES_PER_ARENA - 3 * CHUNK_PAGES;
    region_pages[1] = PAGES_PER_ARENA / 2;
    CHECK(pages_grow(&pa, region_base[0], region_pages[0] * PAGE_SIZE) == 0);
    CHECK(pages_grow(&pa, region_base[1], region_pages[1] * PAGE_SIZE) == 0);
    for (size_t i = 0; i < npages_total(); i++) { present[i] = 1; scav[i] = 1; }
    build_order();
    pages_check(&pa);
    CHECK(pa.free_pages == npages_total() && pa.scav_pages == npages_total());

    uint64_t r = 42;
    page_cache cache = {0, 0, 0};
    long cache_first = -1;
    unsigned returned = 0;
    for (int step = 0; step < 30000; step++) {
        unsigned op = (unsigned)(tl_rand(&r) % 100);
        if (op == 44) {
            /* An allocation undone (its sys_used refused): pages_unalloc
             * must give the pages back exactly as they were, scavenged
             * bits included. */
            static unsigned char scav_before[MAXPAGES];
            memcpy(scav_before, scav, sizeof scav);
            size_t n = 1 + (size_t)(tl_rand(&r) % 600), nr = nruns;
            if (!check_alloc(n, 1)) return;
            if (nruns > nr) {
                struct run ru = runs[--nruns];
                pages_unalloc(&pa, ru.base, ru.n);
                long i = page_index(ru.base);
                for (uintptr_t q = 0; q < ru.n; q++) {
                    used[i + q] = 0;
                    scav[i + q] = scav_before[i + q];
                }
            }
        } else if (op < 45) {
            size_t n = 1 + (size_t)(tl_rand(&r) % 8);
            if (op < 8) n = 1 + (size_t)(tl_rand(&r) % 1500);
            if (!check_alloc(n, 1)) return;
        } else if (op < 50) {
            size_t n = 1 + (size_t)(tl_rand(&r) % 40), al = (size_t)1 << (1 + tl_rand(&r) % 7);
            if (!check_alloc(n, al)) return;
        } else if (op < 88 && nruns) {
            size_t k = (size_t)(tl_rand(&r) % nruns);
            struct run ru = runs[k];
            runs[k] = runs[--nruns];
            pages_free(&pa, ru.base, ru.n);
            model_free(ru.base, ru.n);
        } else if (op < 92 && nruns) {
            /* extend a run in place if the model says the pages are free */
            size_t k = (size_t)(tl_rand(&r) % nruns);
            uintptr_t extra = 1 + tl_rand(&r) % 16, sc = 0;
            long i = page_index(runs[k].base);
            size_t end = (size_t)i + runs[k].n;
            int fits = 1;
            for (uintptr_t q = 0; q < extra; q++) {
                long j = page_index(runs[k].base + (runs[k].n + q) * PAGE_SIZE);
                if (j < 0 || used[j]) fits = 0;
            }
            (void)end;
            bool ok = pages_extend(&pa, runs[k].base, runs[k].n, extra, &sc);
            CHECKF(ok == (bool)fits, "extend %p+%zu by %zu: got %d want %d", (void *)runs[k].base, (size_t)runs[k].n,
                   (size_t)extra, ok, fits);
            if (ok) {
                unsigned msc = 0;
                for (uintptr_t q = 0; q < extra; q++) {
                    long j = page_index(runs[k].base + (runs[k].n + q) * PAGE_SIZE);
                    used[j] = 1;
                    msc += scav[j];
                    scav[j] = 0;
                }
                CHECKF(sc == msc, "extend scav %zu want %u", (size_t)sc, msc);
                runs[k].n += extra;
            }
        } else if (op < 97) {
            /* page cache: refill when empty, then carve small runs */
            if (pagecache_empty(&cache)) {
                if (cache.base) cache_first = -1;
                /* model: the lowest free page decides the 64-page window */
                long lowest = -1;
                for (size_t k2 = 0; k2 < npages_total(); k2++)
                    if (!used[order[k2]]) { lowest = (long)order[k2]; break; }
                cache = pages_alloc_to_cache(&pa);
                if (lowest < 0) {
                    CHECKF(pagecache_empty(&cache), "cache refilled with no free pages");
                    continue;
                }
                uintptr_t want_base = page_addr((size_t)lowest) & ~(uintptr_t)(64 * PAGE_SIZE - 1);
                CHECKF(cache.base == want_base, "cache window %p want %p", (void *)cache.base, (void *)want_base);
                for (int b = 0; b < 64; b++) {
                    long j = page_index(cache.base + b * PAGE_SIZE);
                    int free_in_model = j >= 0 && !used[j];
                    CHECKF(((cache.cache >> b) & 1) == (uint64_t)free_in_model, "cache bit %d", b);
                    CHECKF(((cache.scav >> b) & 1) == (uint64_t)(free_in_model && scav[j]), "cache scav bit %d", b);
                    if (free_in_model) used[j] = 2; /* owned by the cache */
                }
                cache_first = page_index(cache.base);
            }
            uintptr_t n = 1 + tl_rand(&r) % 4;
            uintptr_t want = 0;
            unsigned i = find_bit_range64(cache.cache, (unsigned)n);
            if (i < 64) want = cache.base + i * PAGE_SIZE;
            uint64_t sbits = 0;
            uintptr_t got = pagecache_alloc(&cache, n, &sbits);
            CHECKF(got == want, "pagecache_alloc(%zu) got %p want %p", (size_t)n, (void *)got, (void *)want);
            if (got) {
                uint64_t mbits = 0;
                for (uintptr_t q = 0; q < n; q++) {
                    long j = page_index(got + q * PAGE_SIZE);
                    CHECK(used[j] == 2);
                    used[j] = 1;
                    mbits |= (uint64_t)scav[j] << q;
                    scav[j] = 0;
                }
                CHECKF(sbits == mbits, "pagecache scavenged pages %#llx want %#llx", (unsigned long long)sbits,
                       (unsigned long long)mbits);
                if (tl_rand(&r) % 8 == 0) {
                    /* undone: back to the heap (not the cache), as they were */
                    pages_unalloc_cached(&pa, got, n, sbits);
                    for (uintptr_t q = 0; q < n; q++) {
                        long j = page_index(got + q * PAGE_SIZE);
                        used[j] = 0;
                        scav[j] = (unsigned char)(mbits >> q & 1);
                    }
                } else if (tl_rand(&r) % 4 == 0) {
                    /* used, then freed back into the cache (mheap.c,
                     * free_to_page_cache): not scavenged any more, and the
                     * heap's bits for these pages are stale from here */
                    cache.cache |= (((uint64_t)1 << n) - 1) << ((got - cache.base) / PAGE_SIZE);
                    returned++;
                    for (uintptr_t q = 0; q < n; q++) used[page_index(got + q * PAGE_SIZE)] = 2;
                } else {
                    runs[nruns++] = (struct run){got, n};
                }
            }
        } else {
            /* flush the cache */
            for (int b = 0; b < 64 && cache.base; b++) {
                long j = page_index(cache.base + b * PAGE_SIZE);
                if ((cache.cache >> b) & 1) used[j] = 0;
            }
            pagecache_flush(&pa, &cache);
            cache_first = -1;
        }
        pages_check(&pa);
        /* free-page counter: the model's free pages minus those in the cache */
        size_t free_model = 0, scav_model = 0;
        for (size_t k2 = 0; k2 < npages_total(); k2++) {
            if (!used[k2]) { free_model++; scav_model += scav[k2]; }
        }
        CHECKF(pa.free_pages == free_model, "step %d: free_pages %zu model %zu", step, (size_t)pa.free_pages, free_model);
        CHECKF(pa.scav_pages == scav_model, "step %d: scav_pages %zu model %zu", step, (size_t)pa.scav_pages, scav_model);
    }
    (void)cache_first;
    TLOG("%u runs freed back into the cache", returned);
}

/* A private page allocator beside the heap's, grown by one chunk of a fresh
 * arena reservation: the chunk's base, or 0 if a step failed. */
static uintptr_t private_instance(struct page_alloc *p) {
    if (pages_init(p) != 0) return 0;
    lock(&mheap_.lock);
    uintptr_t got = 0, base = arena_reserve(ARENA_BYTES, &got);
    unlock(&mheap_.lock);
    return base && pages_grow(p, base, CHUNK_BYTES) == 0 ? base : 0;
}

TEST(exhaustion_and_regrowth) {
    /* A fresh instance with one chunk: fill it page by page, fail, free all. */
    static struct page_alloc p2;
    uintptr_t base = private_instance(&p2);
    CHECK(base);
    uintptr_t sc;
    for (unsigned i = 0; i < CHUNK_PAGES; i++) {
        uintptr_t a = pages_alloc(&p2, 1, &sc);
        CHECKF(a == base + i * PAGE_SIZE, "page %u at %p", i, (void *)a);
        CHECK(sc == 1);
    }
    CHECK(pages_alloc(&p2, 1, &sc) == 0);
    CHECK(p2.search_addr == SEARCH_ADDR_MAX);
    pages_free(&p2, base + 100 * PAGE_SIZE, 3);
    CHECK(pages_alloc(&p2, 4, &sc) == 0);
    CHECK(pages_alloc(&p2, 3, &sc) == base + 100 * PAGE_SIZE && sc == 0);
    /* grow the next chunk: a run straddling both chunks becomes possible */
    pages_free(&p2, base + (CHUNK_PAGES - 10) * PAGE_SIZE, 10);
    CHECK(pages_grow(&p2, base + CHUNK_BYTES, CHUNK_BYTES) == 0);
    uintptr_t a = pages_alloc(&p2, 20, &sc);
    CHECKF(a == base + (CHUNK_PAGES - 10) * PAGE_SIZE, "straddling run at %p", (void *)a);
    CHECK(sc == 10);
    pages_check(&p2);
    /* a run of more than a chunk */
    a = pages_alloc(&p2, CHUNK_PAGES - 10, &sc);
    CHECK(a == base + (CHUNK_PAGES + 10) * PAGE_SIZE);
    CHECK(pages_alloc(&p2, 1, &sc) == 0);
    pages_check(&p2);
}

/* Pages freed back into a cache window after use (mheap.c,
 * free_to_page_cache) are not scavenged, whatever the heap's bits from when
 * the window was filled say; an allocation of them that is undone must
 * bring them back unscavenged (else the next user skips zeroing them). */
TEST(undo_of_pages_freed_back_into_a_cache) {
    static struct page_alloc p3;
    uintptr_t base = private_instance(&p3);
    CHECK(base);
    page_cache c = pages_alloc_to_cache(&p3);
    CHECK(c.base == base && c.cache == ~(uint64_t)0 && c.scav == ~(uint64_t)0);
    uintptr_t sc;
    uint64_t bits;
    CHECK(pagecache_alloc(&c, 2, &bits) == base && bits == 3);
    c.cache |= 3; /* used, then freed back into the cache */
    CHECK(pagecache_alloc(&c, 4, &bits) == base && bits == 0xc);
    uint64_t scav_before = p3.scav_pages;
    pages_unalloc_cached(&p3, base, 4, bits); /* its sys_used was refused */
    CHECKF(p3.scav_pages == scav_before + 2, "scavenged pages %llu, want %llu", (unsigned long long)p3.scav_pages,
           (unsigned long long)scav_before + 2);
    pagecache_flush(&p3, &c);
    CHECK(pages_alloc(&p3, 2, &sc) == base && sc == 0); /* they hold data: not scavenged */
    CHECK(pages_alloc(&p3, 2, &sc) == base + 2 * PAGE_SIZE && sc == 2);
    pages_check(&p3);
}

TEST_MAIN()

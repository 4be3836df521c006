/*
 * check.c: the heap invariant checker.
 *
 * Owns: heap_check (one pass over every structure of the allocator,
 * comparing each against what the others say and against recomputation),
 * the local checks that debug builds (GM_DEBUG) run at component
 * boundaries, and gm_check_heap, the public hook.
 * Go counterpart: none as one piece; Go checks its heap in pieces (mheap's
 * span walks in export_test.go, pageAlloc's summaries in mpagealloc tests,
 * mcentral's sanity throws, the GC's own verification).
 *
 * What heap_check verifies (Q: quiescent mode only, see check.h):
 *  - arenas: every record in all_arenas sits in the arena index at its
 *    base; heap_sys is the number of chunks given to the page allocator.
 *  - page allocator: every summary at every level (start, max, end) equals
 *    its recomputation from the bitmaps; the free and scavenged counters
 *    equal the bitmaps; scavenged bits only on free pages; chunks never
 *    grown are fully in use (pages_verify).
 *  - page caches: aligned 64-page windows of pages in use in the bitmaps,
 *    scavenged bits within them, windows of different caches disjoint, the
 *    pagecache_free / pagecache_scav counters their sums.
 *  - mcentral: each partial list is a well-formed doubly linked list of
 *    npartial unowned PARTIAL spans of its class, placed CENTRAL, with the
 *    arena index pointing at them.
 *  - Q every page of the heap, in address order: a page in use belongs to
 *    exactly one of a live span (every page of which maps to that span in
 *    the arena index), a page cache, or a scavenger's claim (counted); a
 *    free page is covered by no live span and held by no page cache. Its
 *    free-map entry names its span's owner, with the span's constants,
 *    and no owner off owned spans.
 *  - Q every live span: record kind and alignment, class parameters (size,
 *    objects, pages, division magic, limit, bitmap words), tail bits set,
 *    remote-free bits only on allocated objects, each counted in
 *    free_state or held back in a cache's remote-free entry, the
 *    zeroed-base mark above its end, and per state: CACHED (owned, placed
 *    current/partial/full, counted remote frees only with NOTIFY), PARTIAL
 *    (unowned, alloc_count live, not all dead), FULL (unowned, every
 *    object live, no counted remote free), LARGE (one object, the
 *    large class). The spans found in each state equal what the caches
 *    and mcentral (npartial, nfull) hold.
 *  - Q every cache (and the fallback cache; mcache_empty stays pristine):
 *    its current spans (window inside the span, on free slots only, no
 *    remote free in it; a span known zero has zero free slots), reuse
 *    stacks (distinct in-use object starts of owned spans of the class,
 *    tagged), remote-free entries (listed in the mask, live small spans
 *    of their class, counts that add up), owned partial and full lists
 *    (linked, placed, the countdown invariants of mcache.c: a partial
 *    span has countdown == live >= 1 and at least the reuse threshold
 *    free, a full span countdown == threshold - free), and notify stack
 *    (exactly the owned spans with NOTIFY set).
 *  - Q statistics: per size class, Mallocs - Frees equals the objects live
 *    in the bitmaps minus those in windows and on reuse stacks; large
 *    objects and bytes equal the LARGE spans; pages_inuse the pages of
 *    live spans; free + claimed + cached + in use pages = HeapSys; span
 *    and cache records in use equal the live spans and caches; and the
 *    identities of stats.c (no scavenger run is in flight).
 * Objects' contents are the program's; heap_check assumes a program
 * without misuse (a double free reported in GOMALLOC_ON_ERROR=warn mode may
 * leave a remote-free bit that the checks count as an error).
 *
 * Locking: heap_check takes every lock (malloc_lock_all: fallback,
 * mcentral, cache list and page caches, heap, record allocators) and keeps
 * them for the whole check, so it runs alone; its scratch state is static
 * for that reason. Nothing here allocates; messages go through print.c.
 * malloc_lock_all includes the scavenger's run lock, so no run is in flight
 * (no pages claimed) and the OS counters are settled.
 */
#include "check.h"

#include <stdarg.h>
#include <string.h>

#include "arena.h"
#include "gomalloc.h"
#include "malloc.h"
#include "mcache.h"
#include "mcentral.h"
#include "mheap.h"
#include "mspan.h"
#include "pagealloc.h"
#include "print.h"
#include "scavenge.h"
#include "stats.h"

#define LIST_LIMIT ((uint64_t)1 << 30) /* longer lists are cycles */
#define PCW_MAX 4096                   /* page-cache windows kept sorted; more: linear scan */

struct pcw {
    uintptr_t base;
    uint64_t pages;
};

/* The state of one check: static, guarded by holding every lock. */
static struct cx {
    char *why;
    size_t cap;
    bool failed;
    bool quiescent;
    /* reached from the caches and mcentral */
    uint64_t ncaches, cached_spans, pc_pages, pc_scav;
    uint64_t window_objs[NUM_SIZE_CLASSES], reuse_objs[NUM_SIZE_CLASSES];
    uint64_t empty_bytes; /* kept empty spans of the cache being checked */
    uint64_t npartial[NUM_SPAN_CLASSES], nfull[NUM_SPAN_CLASSES];
    /* found by the page walk */
    uint64_t seen_cached, seen_partial[NUM_SPAN_CLASSES], seen_full[NUM_SPAN_CLASSES];
    uint64_t seen_large, large_bytes, span_pages, pc_seen, unexplained, grown_chunks;
    uint64_t lc_pages, lc_seen; /* pages of large-span caches, held and met by the walk */
    uint64_t live_objs[NUM_SIZE_CLASSES], record_bytes[SPAN_RECORD_KINDS];
    /* page-cache windows */
    struct pcw pcw[PCW_MAX];
    unsigned npcw;
    bool pcw_overflow;
} cx;

static bool fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool fail(const char *fmt, ...) {
    if (!cx.failed) {
        struct writer w;
        writer_init(&w, cx.why, cx.cap, -1);
        va_list ap;
        va_start(ap, fmt);
        writer_vprintf(&w, fmt, ap);
        va_end(ap);
        cx.failed = true;
    }
    return false;
}

#define REQUIRE(cond, ...)                                                                                  \
    do {                                                                                                     \
        if (unlikely(!(cond))) return fail(__VA_ARGS__);                                                     \
    } while (0)


static const char *state_name(unsigned st) {
    static const char *const names[] = {"DEAD", "CACHED", "PARTIAL", "FULL", "LARGE"};
    return st < 5 ? names[st] : "?";
}

static bool page_covered(mspan *s, uintptr_t addr) {
    return addr >= s->base && addr < s->base + s->npages * PAGE_SIZE;
}

/* ---- Spans --------------------------------------------------------------- */

/* The record matches its size class, and the bitmaps their shape. Safe
 * for any live small span (remote bits change under us: only the bits
 * past nelems are looked at). */
static bool span_shape(mspan *s) {
    void *b = (void *)s->base;
    unsigned cls = spanclass_sizeclass(s->spanclass);
    REQUIRE(cls >= 1 && cls < NUM_SIZE_CLASSES, "span %p: size class %u", b, cls);
    REQUIRE(s->elemsize == class_to_size[cls], "span %p: elemsize %zu for class %u (%u)", b, (size_t)s->elemsize,
            cls, (unsigned)class_to_size[cls]);
    REQUIRE(s->nelems == class_to_nelems[cls], "span %p: nelems %u for class %u (%u)", b, s->nelems, cls,
            (unsigned)class_to_nelems[cls]);
    REQUIRE(s->npages == class_to_npages[cls], "span %p: npages %zu for class %u", b, (size_t)s->npages, cls);
    REQUIRE(s->div_mul == class_to_divmagic[cls], "span %p: division magic", b);
    REQUIRE(s->div_shift == __builtin_ctzll(s->elemsize) && s->div_inv * (s->elemsize >> s->div_shift) == 1,
            "span %p: exact-division constants", b);
    REQUIRE(s->fast_fresh == (reuse_limit_of(s->spanclass) ? s->fresh : 0u), "span %p: fast_fresh %zu, fresh %u", b,
            (size_t)s->fast_fresh, s->fresh);
    REQUIRE(s->nwords == (s->nelems + 63) / 64, "span %p: nwords %u for %u objects", b, s->nwords, s->nelems);
    REQUIRE(s->record_kind == span_record_kind(s->nwords), "span %p: record kind %u for %u words", b,
            s->record_kind, s->nwords);
    REQUIRE(s->limit == s->base + (uintptr_t)s->nelems * s->elemsize, "span %p: limit", b);
    REQUIRE(((uintptr_t)s & (CACHE_LINE - 1)) == 0, "span %p: record %p not aligned", b, (void *)s);
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t t = tail_bits(s->nelems, w);
        REQUIRE((span_alloc_word(s, w) & t) == t, "span %p: tail bits of word %u cleared", b, w);
        REQUIRE(!(span_remote_word(s, w) & t), "span %p: remote free past the last object (word %u)", b, w);
    }
    return true;
}

/* Count the bitmaps of a small span: objects allocated (alloc bits), and
 * of those freed remotely. Remote bits must be on allocated objects. */
static bool span_counts(mspan *s, uint32_t *alloc_n, uint32_t *remote_n) {
    uint32_t a = 0, r = 0;
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t t = tail_bits(s->nelems, w);
        uint64_t aw = span_alloc_word(s, w), rw = span_remote_word(s, w);
        REQUIRE(!(rw & ~aw), "span %p: remote free of a free object (word %u: alloc 0x%llx remote 0x%llx)",
                (void *)s->base, w, (unsigned long long)aw, (unsigned long long)rw);
        a += popcount64(aw & ~t);
        r += popcount64(rw);
    }
    *alloc_n = a;
    *remote_n = r;
    return true;
}

/* The arena's zeroed-base mark is above the span's end. */
static bool span_zeroed_base(mspan *s) {
    uintptr_t last = s->base + s->npages * PAGE_SIZE - 1;
    heap_arena *ha = arena_of(last);
    REQUIRE(ha, "span %p: last page %p in no arena", (void *)s->base, (void *)last);
    uintptr_t zb = atomic_load_explicit(&ha->zeroed_base, memory_order_relaxed);
    REQUIRE(last - ha->base < zb, "span %p: ends above its arena's zeroed base %p", (void *)s->base,
            (void *)(ha->base + zb));
    return true;
}

/* The remote frees of s counted in free_state plus those held back in the
 * caches' entries (held) are its remote bits (remote_n). */
static bool remote_count_adds_up(mspan *s, uint32_t remote_n, uint32_t held) {
    uint64_t v = span_free_state(s);
    REQUIRE(fs_count(v) + (int64_t)held == (int64_t)remote_n,
            "span %p (%s): free_state counts %d remote frees, %u uncounted, bitmap has %u", (void *)s->base,
            state_name(fs_state(v)), fs_count(v), held, remote_n);
    return true;
}

/* A live span found by the page walk (quiescent). */
static bool check_live_span(mspan *s) {
    void *b = (void *)s->base;
    uint64_t v = span_free_state(s);
    unsigned st = fs_state(v);
    REQUIRE(fs_class(v) == s->spanclass, "span %p: free_state class %u, span class %u", b, fs_class(v),
            s->spanclass);
    REQUIRE(s->npages >= 1, "span %p: no pages", b);
    REQUIRE(s->record_kind < SPAN_RECORD_KINDS, "span %p: record kind %u", b, s->record_kind);
    cx.record_bytes[s->record_kind] += mheap_.spanalloc[s->record_kind].size;
    cx.span_pages += s->npages;
    if (!span_zeroed_base(s)) return false;
    if (st == SPAN_LARGE) {
        REQUIRE(spanclass_sizeclass(s->spanclass) == 0, "large span %p: class %u", b, s->spanclass);
        REQUIRE(s->nelems == 1 && s->nwords == 0 && s->record_kind == 0, "large span %p: %u objects, %u words", b,
                s->nelems, s->nwords);
        REQUIRE(s->elemsize == s->npages * PAGE_SIZE && s->limit == s->base + s->elemsize,
                "large span %p: elemsize %zu for %zu pages", b, (size_t)s->elemsize, (size_t)s->npages);
        REQUIRE(span_owner(s) == NULL && s->place == PLACE_NONE, "large span %p: owned or placed", b);
        REQUIRE(fs_count(v) == 0 && !(v & FS_NOTIFY), "large span %p: remote count %d", b, fs_count(v));
        cx.seen_large++;
        cx.large_bytes += s->elemsize;
        return true;
    }
    if (!span_shape(s)) return false;
    uint32_t alloc_n = 0, remote_n = 0;
    if (!span_counts(s, &alloc_n, &remote_n)) return false;
    /* (a span with entries held back has remote bits or a count below
     * zero; check_cache checks every entry's span too) */
    uint32_t pending = remote_n || fs_count(v) ? mcache_remote_pending_for(s) : 0;
    if (!remote_count_adds_up(s, remote_n, pending)) return false;
    cx.live_objs[spanclass_sizeclass(s->spanclass)] += alloc_n - remote_n;
    switch (st) {
    case SPAN_CACHED:
        REQUIRE(span_owner(s) != NULL, "span %p: CACHED without an owner", b);
        REQUIRE(s->place == PLACE_CURRENT || s->place == PLACE_PARTIAL || s->place == PLACE_FULL,
                "span %p: CACHED with place %u", b, s->place);
        REQUIRE(remote_n <= pending || (v & FS_NOTIFY), "span %p: %u remote frees and its owner was not told", b,
                remote_n);
        cx.seen_cached++;
        break;
    case SPAN_PARTIAL:
        REQUIRE(span_owner(s) == NULL && s->place == PLACE_CENTRAL && !(v & FS_NOTIFY),
                "span %p: PARTIAL but owned, placed %u or flagged", b, s->place);
        REQUIRE(alloc_n == s->alloc_count, "span %p: PARTIAL with %u objects allocated, alloc_count %u", b, alloc_n,
                s->alloc_count);
        REQUIRE(fs_count(v) < (int32_t)alloc_n, "span %p: PARTIAL with every object (%u) freed", b, alloc_n);
        REQUIRE(alloc_n < s->nelems || remote_n > 0, "span %p: PARTIAL with no free object", b);
        cx.seen_partial[s->spanclass]++;
        break;
    case SPAN_FULL:
        REQUIRE(span_owner(s) == NULL && s->place == PLACE_NONE && !(v & FS_NOTIFY),
                "span %p: FULL but owned, placed %u or flagged", b, s->place);
        REQUIRE(alloc_n == s->nelems && s->alloc_count == s->nelems && fs_count(v) <= 0,
                "span %p: FULL with %u of %u allocated (alloc_count %u), %u freed", b, alloc_n, s->nelems,
                s->alloc_count, remote_n);
        cx.seen_full[s->spanclass]++;
        break;
    default:
        return fail("span %p: live with state %u", b, st);
    }
    return true;
}

/* ---- Page caches ------------------------------------------------------- */

static bool check_page_cache(mcache *c) {
    page_cache *pc = &c->pcache;
    if (!pc->cache) return true;
    void *b = (void *)pc->base;
    REQUIRE(pc->base % (PAGE_CACHE_PAGES * PAGE_SIZE) == 0, "cache %p: page cache window %p not aligned",
            (void *)c, b);
    REQUIRE(!(pc->scav & ~pc->cache), "cache %p: page cache at %p: scavenged bits on pages it does not hold",
            (void *)c, b);
    heap_arena *ha = arena_of(pc->base);
    REQUIRE(ha && ha->palloc == &mheap_.pages, "cache %p: page cache window %p outside the heap", (void *)c, b);
    unsigned ci = (unsigned)((pc->base - ha->base) >> CHUNK_SHIFT);
    REQUIRE(ha->grown >> ci & 1, "cache %p: page cache window %p in a chunk never grown", (void *)c, b);
    const struct palloc_chunk *ch = &ha->chunks[ci];
    unsigned w = (unsigned)((pc->base >> PAGE_SHIFT) & (CHUNK_PAGES - 1)) / 64;
    REQUIRE((ch->alloc[w] & pc->cache) == pc->cache,
            "cache %p: page cache at %p holds pages free in the bitmap (0x%llx, bitmap 0x%llx)", (void *)c, b,
            (unsigned long long)pc->cache, (unsigned long long)ch->alloc[w]);
    cx.pc_pages += popcount64(pc->cache);
    cx.pc_scav += popcount64(pc->scav);
    if (cx.npcw < PCW_MAX) {
        /* insertion in base order; windows of equal base must be disjoint */
        unsigned i = cx.npcw++;
        while (i > 0 && cx.pcw[i - 1].base > pc->base) {
            cx.pcw[i] = cx.pcw[i - 1];
            i--;
        }
        cx.pcw[i] = (struct pcw){pc->base, pc->cache};
        for (unsigned j = i; j > 0 && cx.pcw[j - 1].base == pc->base; j--)
            REQUIRE(!(cx.pcw[j - 1].pages & pc->cache), "page caches overlap at %p", b);
        for (unsigned j = i + 1; j < cx.npcw && cx.pcw[j].base == pc->base; j++)
            REQUIRE(!(cx.pcw[j].pages & pc->cache), "page caches overlap at %p", b);
    } else {
        cx.pcw_overflow = true;
    }
    return true;
}

/* Pages of the 64-page window at base held by page caches. */
static uint64_t page_cache_pages(uintptr_t base) {
    uint64_t m = 0;
    if (cx.pcw_overflow) {
        for (mcache *c = mcache_list_locked(); c; c = c->next)
            if (c->pcache.cache && c->pcache.base == base) m |= c->pcache.cache;
        return m;
    }
    unsigned lo = 0, hi = cx.npcw;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (cx.pcw[mid].base < base)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < cx.npcw && cx.pcw[lo].base == base; lo++) m |= cx.pcw[lo].pages;
    return m;
}

/* ---- Caches (quiescent) ------------------------------------------------- */

/* A free object not handed out since its span's memory was zero: all zero
 * but for the free tag in word 1 of objects below s->fresh (mspan.h). */
static bool fresh_object_zero(const mspan *s, uintptr_t p) {
    const uint64_t *q = (const uint64_t *)p;
    bool tagged = s->elemsize >= 16 && (p - s->base) / s->elemsize < s->fresh;
    for (size_t i = 0; i < s->elemsize / 8; i++)
        if (q[i] && !(tagged && i == 1)) return false;
    return true;
}

/* The free-tag invariant (mspan.h): every free object below s->fresh of 16
 * bytes or more carries its tag. */
static bool free_tagged(const mspan *s, uintptr_t p) {
    return s->elemsize < 16 || (p - s->base) / s->elemsize >= s->fresh || reuse_tagged((void *)p);
}

/* A span reached from cache c (as current span or on an owned list). */
static bool check_owned(mcache *c, mspan *s, uint8_t spc, unsigned place, uint64_t *flagged) {
    REQUIRE(s != &emptyspan, "cache %p: the empty span on a list of class %u", (void *)c, spc);
    void *b = (void *)s->base;
    uint64_t v = span_free_state(s);
    REQUIRE(fs_state(v) == SPAN_CACHED, "cache %p: span %p of class %u (place %u) is %s", (void *)c, b, spc,
            place, state_name(fs_state(v)));
    REQUIRE(span_owner(s) == c, "cache %p: span %p of class %u owned by %p", (void *)c, b, spc,
            (void *)span_owner(s));
    REQUIRE(s->spanclass == spc, "cache %p: span %p of class %u on the lists of class %u", (void *)c, b,
            s->spanclass, spc);
    REQUIRE(s->place == place, "cache %p: span %p placed %u, found at %u", (void *)c, b, s->place, place);
    REQUIRE(span_lookup(s->base) == s, "cache %p: span %p not in the arena index", (void *)c, b);
    if (v & FS_NOTIFY) (*flagged)++;
    cx.cached_spans++;
    return true;
}

static bool check_current(mcache *c, uint8_t spc, uint64_t *flagged) {
    struct cache_class *k = cache_class_of(c, spc);
    mspan *s = k->alloc;
    if (s == &emptyspan) {
        REQUIRE(k->window == 0, "cache %p class %u: a window without a span", (void *)c, spc);
        return true;
    }
    if (!check_owned(c, s, spc, PLACE_CURRENT, flagged)) return false;
    void *b = (void *)s->base;
    if (k->window_word == NO_WINDOW) {
        REQUIRE(k->window == 0, "cache %p class %u: a window without a word", (void *)c, spc);
        return true;
    }
    REQUIRE(k->window_word < s->nwords, "cache %p class %u: window word %u outside span %p", (void *)c, spc,
            k->window_word, b);
    unsigned w = k->window_word;
    REQUIRE(k->window_base == s->base + (uintptr_t)w * 64 * s->elemsize, "cache %p class %u: window base",
            (void *)c, spc);
    uint64_t a = span_alloc_word(s, w), r = span_remote_word(s, w);
    REQUIRE(!(k->window & tail_bits(s->nelems, w)), "cache %p class %u: window past the last object", (void *)c,
            spc);
    REQUIRE((a & k->window) == k->window, "cache %p class %u: window slots not claimed in span %p", (void *)c, spc,
            b);
    REQUIRE(!(r & k->window), "cache %p class %u: remote free of a free window slot in span %p", (void *)c, spc, b);
    cx.window_objs[spanclass_sizeclass(spc)] += popcount64(k->window);
    REQUIRE(k->window == 0 || s->fresh >= (w + 1) * 64 || s->fresh >= s->nelems,
            "cache %p class %u: window word %u past span %p's fresh mark %u", (void *)c, spc, w, b, s->fresh);
    for (uint64_t m = k->window; m; m &= m - 1) {
        uintptr_t p = k->window_base + (uintptr_t)__builtin_ctzll(m) * s->elemsize;
        REQUIRE(free_tagged(s, p), "span %p: free object %p in a window has no free tag", b, (void *)p);
    }
    if (!s->needzero) {
        /* First pass over memory known zero: every slot not handed out yet
         * (the window's, and every free one past it) still reads zero. */
        for (uint64_t m = k->window; m; m &= m - 1) {
            uintptr_t p = k->window_base + (uintptr_t)__builtin_ctzll(m) * s->elemsize;
            REQUIRE(fresh_object_zero(s, p), "span %p: object %p not zero (span needzero=0)", b, (void *)p);
        }
        for (unsigned ww = w + 1; ww < s->nwords; ww++)
            for (uint64_t m = ~span_alloc_word(s, ww); m; m &= m - 1) {
                uintptr_t p = span_object_at(s, ww * 64 + (unsigned)__builtin_ctzll(m));
                REQUIRE(fresh_object_zero(s, p), "span %p: object %p not zero (span needzero=0)", b,
                        (void *)p);
            }
    }
    return true;
}

static bool check_reuse(mcache *c, uint8_t spc) {
    struct cache_class *k = cache_class_of(c, spc);
    unsigned cls = spanclass_sizeclass(spc);
    REQUIRE(k->elemsize == class_to_size[cls], "cache %p class %u: elemsize %u", (void *)c, spc, k->elemsize);
    uint32_t depth = reuse_depth(k), limit = k->reuse_end / (uint32_t)sizeof(void *);
    REQUIRE(k->reuse_end == reuse_limit_of(spc) * sizeof(void *) && depth <= limit &&
                k->reuse_bytes % sizeof(void *) == 0,
            "cache %p class %u: %u bytes on the reuse stack, capacity %u", (void *)c, spc, k->reuse_bytes,
            k->reuse_end);
    REQUIRE(!limit || (spc & 1), "cache %p class %u: a scan class with a reuse stack", (void *)c, spc);
    uintptr_t sorted[REUSE_MAX];
    for (uint32_t i = 0; i < depth; i++) {
        uintptr_t p = (uintptr_t)reuse_stack(k)[i];
        mspan *s = span_lookup(p);
        REQUIRE(s, "cache %p class %u: reuse stack holds %p, not a heap pointer", (void *)c, spc, (void *)p);
        uint64_t v = span_free_state(s);
        REQUIRE(fs_state(v) == SPAN_CACHED && span_owner(s) == c && s->spanclass == spc && page_covered(s, p),
                "cache %p class %u: reuse stack holds %p of span %p (%s, owner %p, class %u)", (void *)c, spc,
                (void *)p, (void *)s->base, state_name(fs_state(v)), (void *)span_owner(s), s->spanclass);
        uintptr_t off = p - s->base, idx = off / s->elemsize;
        REQUIRE(idx * s->elemsize == off && idx < s->nelems, "cache %p: reuse stack holds %p, not an object start",
                (void *)c, (void *)p);
        unsigned w = (unsigned)(idx >> 6);
        uint64_t bit = (uint64_t)1 << (idx & 63);
        REQUIRE(span_alloc_word(s, w) & bit & ~cache_window_for(k, s, w) & ~span_remote_word(s, w),
                "cache %p: object %p on the reuse stack is free in its span", (void *)c, (void *)p);
        REQUIRE(reuse_tagged((void *)p), "cache %p: object %p on the reuse stack lost its tag", (void *)c, (void *)p);
        uint32_t j = i;
        while (j > 0 && sorted[j - 1] > p) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = p;
        REQUIRE(j == 0 || sorted[j - 1] != p, "cache %p: object %p twice on the reuse stack", (void *)c, (void *)p);
    }
    cx.reuse_objs[cls] += depth;
    return true;
}

static bool check_owned_list(mcache *c, uint8_t spc, unsigned place, uint64_t *flagged) {
    mspan *prev = NULL;
    uint64_t n = 0;
    for (mspan *s = place == PLACE_PARTIAL ? c->partial[spc] : c->full[spc]; s; prev = s, s = s->next) {
        REQUIRE(++n < LIST_LIMIT, "cache %p class %u: owned list has a cycle", (void *)c, spc);
        REQUIRE(s->prev == prev, "cache %p class %u: owned list links broken at span %p", (void *)c, spc,
                (void *)s->base);
        if (!check_owned(c, s, spc, place, flagged)) return false;
        uint32_t live = span_live_objects(s), free = s->nelems - live;
        uint32_t thr = s->nelems >= 16 ? s->nelems / 8u : 1u;
        if (place == PLACE_PARTIAL && s->countdown == COUNTDOWN_EMPTY) cx.empty_bytes += s->npages * PAGE_SIZE;
        if (place == PLACE_PARTIAL)
            REQUIRE(free >= thr && s->countdown == (live ? live : COUNTDOWN_EMPTY),
                    "cache %p: owned partial span %p: %u live, %u free (threshold %u), countdown %u", (void *)c,
                    (void *)s->base, live, free, thr, s->countdown);
        else
            REQUIRE(free < thr && s->countdown == thr - free,
                    "cache %p: owned full span %p: %u free (threshold %u), countdown %u", (void *)c, (void *)s->base,
                    free, thr, s->countdown);
    }
    return true;
}

/* The large-span cache: dead large spans, binned by their page count,
 * still in use in the page allocator and named by the arena index. */
static bool check_large_cache(mcache *c) {
    uint64_t pages = 0;
    for (uintptr_t n = 0; n <= LARGE_CACHE_MAX_PAGES; n++) {
        uint64_t count = 0;
        for (mspan *s = c->large_bins[n]; s; s = s->next) {
            REQUIRE(++count < LIST_LIMIT, "cache %p: large-span bin %zu has a cycle", (void *)c, (size_t)n);
            void *b = (void *)s->base;
            REQUIRE(fs_state(span_free_state(s)) == SPAN_DEAD && spanclass_sizeclass(s->spanclass) == 0,
                    "cache %p: large-span cache holds span %p (%s, class %u)", (void *)c, b,
                    state_name(fs_state(span_free_state(s))), s->spanclass);
            REQUIRE(s->npages == n && s->elemsize == n * PAGE_SIZE, "cache %p: span %p of %zu pages in bin %zu",
                    (void *)c, b, (size_t)s->npages, (size_t)n);
            for (uintptr_t i = 0; i < n; i++)
                REQUIRE(span_lookup(s->base + i * PAGE_SIZE) == s, "cache %p: cached large span %p: page %zu not "
                        "in the arena index", (void *)c, b, (size_t)i);
            pages += n;
        }
    }
    REQUIRE(pages == c->large_cached_pages, "cache %p: large-span cache holds %llu pages, its counter says %llu",
            (void *)c, (unsigned long long)pages, (unsigned long long)c->large_cached_pages);
    cx.lc_pages += pages;
    return true;
}

static bool check_cache(mcache *c) {
    uint64_t flagged = 0;
    if (!check_large_cache(c)) return false;
    cx.empty_bytes = 0;
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++) {
        uint8_t spc = (uint8_t)i;
        if (!check_reuse(c, spc) || !check_current(c, spc, &flagged) ||
            !check_owned_list(c, spc, PLACE_PARTIAL, &flagged) || !check_owned_list(c, spc, PLACE_FULL, &flagged))
            return false;
    }
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        struct remote_pending *r = &c->remote[spc];
        bool listed = (c->remote_mask[spc / 64] >> (spc % 64)) & 1;
        REQUIRE(listed == (r->span != NULL) &&
                    (r->span ? r->n >= 1 && r->n <= r->limit && r->limit == remote_limit(r->span) : !r->n),
                "cache %p: remote-free entry of class %u: span %p, %u frees, listed %d", (void *)c, spc,
                r->span ? (void *)r->span->base : NULL, r->n, listed);
        if (!r->span) continue;
        unsigned st = fs_state(span_free_state(r->span));
        REQUIRE(r->span->spanclass == spc && (st == SPAN_CACHED || st == SPAN_PARTIAL || st == SPAN_FULL),
                "cache %p: remote-free entry of class %u holds span %p of class %u, %s", (void *)c, spc,
                (void *)r->span->base, r->span->spanclass, state_name(st));
        uint32_t alloc_n, remote_n;
        if (!span_counts(r->span, &alloc_n, &remote_n) ||
            !remote_count_adds_up(r->span, remote_n, mcache_remote_pending_for(r->span)))
            return false;
    }
    REQUIRE(!c->fallback || !remote_any(c), "the fallback cache has remote-free entries");
    REQUIRE(cx.empty_bytes == c->empty_bytes && c->empty_bytes <= EMPTY_KEEP_BYTES,
            "cache %p: %llu bytes of empty spans on the partial lists, %llu counted (limit %llu)", (void *)c,
            (unsigned long long)cx.empty_bytes, (unsigned long long)c->empty_bytes,
            (unsigned long long)EMPTY_KEEP_BYTES);
    uint64_t n = 0;
    for (mspan *s = atomic_load_explicit(&c->notify, memory_order_acquire); s;
         s = atomic_load_explicit(&s->notify_next, memory_order_relaxed)) {
        REQUIRE(++n < LIST_LIMIT, "cache %p: notify stack has a cycle", (void *)c);
        uint64_t v = span_free_state(s);
        REQUIRE(span_owner(s) == c && fs_state(v) == SPAN_CACHED && (v & FS_NOTIFY),
                "cache %p: span %p on its notify stack is %s, owner %p, NOTIFY %d", (void *)c, (void *)s->base,
                state_name(fs_state(v)), (void *)span_owner(s), !!(v & FS_NOTIFY));
    }
    REQUIRE(n == flagged, "cache %p: %llu spans on the notify stack, %llu owned spans flagged", (void *)c,
            (unsigned long long)n, (unsigned long long)flagged);
    return true;
}

/* The cache of threads without one: never written. */
static bool check_empty_cache(void) {
    mcache *c = &mcache_empty;
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++)
        REQUIRE(cache_class_of(c, i)->alloc == &emptyspan && !cache_class_of(c, i)->window && cache_class_of(c, i)->window_word == NO_WINDOW && !reuse_depth(cache_class_of(c, i)) &&
                    !c->partial[i] && !c->full[i],
                "mcache_empty: class %u was written", i);
    REQUIRE(!atomic_load(&c->notify) && !c->pcache.cache && !remote_any(c),
            "mcache_empty: notify stack, page cache or remote-free entries in use");
    REQUIRE(emptyspan.nelems == 0 && emptyspan.nwords == 0 && span_owner(&emptyspan) == NULL,
            "the empty span was written");
    return true;
}

/* ---- mcentral ------------------------------------------------------------ */

static bool check_central(void) {
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        mcentral *mc = &mheap_.central[spc];
        REQUIRE(mc->spanclass == spc, "mcentral %u: class %u", spc, mc->spanclass);
        mspan *prev = NULL;
        uint64_t n = 0;
        for (mspan *s = mc->partial; s; prev = s, s = s->next) {
            REQUIRE(++n < LIST_LIMIT, "mcentral %u: partial list has a cycle", spc);
            REQUIRE(s->prev == prev, "mcentral %u: partial list links broken at span %p", spc, (void *)s->base);
            uint64_t v = span_free_state(s);
            REQUIRE(fs_state(v) == SPAN_PARTIAL && s->place == PLACE_CENTRAL && span_owner(s) == NULL &&
                        s->spanclass == spc && fs_class(v) == spc && !(v & FS_NOTIFY),
                    "mcentral %u: span %p on the partial list is %s, place %u, owner %p, class %u", spc,
                    (void *)s->base, state_name(fs_state(v)), s->place, (void *)span_owner(s), s->spanclass);
            REQUIRE(span_lookup(s->base) == s, "mcentral %u: span %p not in the arena index", spc, (void *)s->base);
            if (!span_shape(s)) return false;
        }
        REQUIRE(n == mc->npartial, "mcentral %u: %llu spans on the partial list, npartial %llu", spc,
                (unsigned long long)n, (unsigned long long)mc->npartial);
        cx.npartial[spc] = n;
        cx.nfull[spc] = mc->nfull;
    }
    return true;
}

/* ---- Arenas and pages ---------------------------------------------------- */

static bool check_arenas(void) {
    uint64_t n = 0, grown = 0;
    for (heap_arena *ha = atomic_load(&all_arenas); ha; ha = ha->next) {
        REQUIRE(++n < LIST_LIMIT, "arena list has a cycle");
        REQUIRE(ha->base % ARENA_BYTES == 0 && !(ha->base >> HEAP_ADDR_BITS), "arena record %p: base %p",
                (void *)ha, (void *)ha->base);
        REQUIRE(atomic_load(&arena_index[ha->base >> ARENA_SHIFT]) == ha, "arena %p: not in the arena index",
                (void *)ha->base);
        REQUIRE(!ha->grown || ha->palloc, "arena %p: chunks grown by no page allocator", (void *)ha->base);
        REQUIRE(!(ha->huge & ~ha->grown), "arena %p: chunks %#x marked for huge pages but never grown",
                (void *)ha->base, (unsigned)(ha->huge & ~ha->grown));
        if (ha->palloc == &mheap_.pages) grown += popcount64(ha->grown);
    }
    cx.grown_chunks = grown;
    REQUIRE(mheap_.heap_sys == grown * CHUNK_BYTES, "HeapSys %llu, but %llu chunks were grown",
            (unsigned long long)mheap_.heap_sys, (unsigned long long)grown);
    return true;
}

static bool check_page_caches(void) {
    for (mcache *c = mcache_list_locked(); c; c = c->next) {
        REQUIRE(++cx.ncaches < LIST_LIMIT, "cache list has a cycle");
        REQUIRE(!c->next || c->next->prev == c, "cache list links broken at %p", (void *)c);
        if (!check_page_cache(c)) return false;
    }
    uint64_t pf = atomic_load(&mheap_.pagecache_free), ps = atomic_load(&mheap_.pagecache_scav);
    REQUIRE(cx.pc_pages == pf && cx.pc_scav == ps,
            "page caches hold %llu pages (%llu scavenged), counters say %llu (%llu)", (unsigned long long)cx.pc_pages,
            (unsigned long long)cx.pc_scav, (unsigned long long)pf, (unsigned long long)ps);
    return true;
}

/* The free-map entry of page addr against s, the live span holding the
 * page (NULL: none): the owner's id copied, and while there is one, what
 * the free fast path reads (arena.h, struct free_entry). */
static bool free_entry_matches(uintptr_t addr, mspan *s) {
    const struct free_entry *e = free_entry_of(addr);
    mcache *o = s ? span_owner(s) : NULL;
    REQUIRE(free_entry_owner(e) == (o ? o->owner_id : 0), "page %p: free map names owner %#zx, its span %p has %p (%#zx)",
            (void *)addr, (size_t)free_entry_owner(e), s ? (void *)s->base : NULL, (void *)o,
            (size_t)(o ? o->owner_id : 0));
    if (o)
        REQUIRE(e->base == (uint32_t)s->base && e->mult == free_index_mult(s->div_inv, s->div_shift) &&
                    e->slot == cache_class_of(o, s->spanclass) && e->spanclass == s->spanclass &&
                    e->fast_fresh == s->fast_fresh,
                "page %p: free-map entry differs from span %p (fast_fresh %u vs %zu)", (void *)addr,
                (void *)s->base, e->fast_fresh, (size_t)s->fast_fresh);
    return true;
}

/* Every page of the heap in address order (quiescent). */
static bool walk_pages(void) {
    struct page_alloc *p = &mheap_.pages;
    if (!p->end) return true;
    mspan *cur = NULL;
    uintptr_t cur_end = 0;
    uintptr_t ai_lo = p->start / CHUNKS_PER_ARENA, ai_hi = (p->end - 1) / CHUNKS_PER_ARENA;
    for (uintptr_t ai = ai_lo; ai <= ai_hi; ai++) {
        heap_arena *ha = atomic_load_explicit(&arena_index[ai], memory_order_relaxed);
        uintptr_t abase = ai << ARENA_SHIFT;
        if (!ha || ha->palloc != p) {
            REQUIRE(cur_end <= abase, "span %p runs into arena %p, not the heap's", (void *)cur->base, (void *)abase);
            continue;
        }
        for (unsigned j = 0; j < CHUNKS_PER_ARENA; j++) {
            uintptr_t cbase = abase + (uintptr_t)j * CHUNK_BYTES;
            if (!(ha->grown >> j & 1)) {
                REQUIRE(cur_end <= cbase, "span %p runs into chunk %p, never grown", (void *)cur->base, (void *)cbase);
                continue;
            }
            const struct palloc_chunk *ch = &ha->chunks[j];
            for (unsigned w = 0; w < CHUNK_PAGES / 64; w++) {
                uintptr_t wbase = cbase + (uintptr_t)w * 64 * PAGE_SIZE;
                uint64_t pcm = page_cache_pages(wbase), used = ch->alloc[w];
                for (unsigned b = 0; b < 64; b++) {
                    uintptr_t addr = wbase + (uintptr_t)b * PAGE_SIZE;
                    bool in_use = used >> b & 1, cached = pcm >> b & 1;
                    mspan *s = atomic_load_explicit(&ha->spans[(addr - abase) >> PAGE_SHIFT], memory_order_relaxed);
                    /* the live span this page is part of, if any */
                    mspan *holder = addr < cur_end ? cur
                                    : s && s->base == addr && in_use && !cached &&
                                            fs_state(span_free_state(s)) != SPAN_DEAD
                                        ? s
                                        : NULL;
                    if (!free_entry_matches(addr, holder)) return false;
                    if (addr < cur_end) {
                        REQUIRE(in_use && !cached && s == cur,
                                "page %p of span %p: in use %d, page-cached %d, arena index says span %p",
                                (void *)addr, (void *)cur->base, in_use, cached, s ? (void *)s->base : NULL);
                        continue;
                    }
                    if (!in_use) {
                        REQUIRE(!cached, "page %p: held by a page cache but free in the bitmap", (void *)addr);
                        REQUIRE(!s || fs_state(span_free_state(s)) == SPAN_DEAD || !page_covered(s, addr),
                                "page %p: free in the bitmap but part of live span %p (%s)", (void *)addr,
                                (void *)s->base, state_name(fs_state(span_free_state(s))));
                        continue;
                    }
                    if (cached) {
                        cx.pc_seen++;
                        continue;
                    }
                    if (s && s->base == addr && fs_state(span_free_state(s)) != SPAN_DEAD) {
                        if (!check_live_span(s)) return false;
                        cur = s;
                        cur_end = addr + s->npages * PAGE_SIZE;
                        continue;
                    }
                    if (s && s->base == addr && spanclass_sizeclass(s->spanclass) == 0) {
                        /* a dead large span kept by a large-span cache
                         * (check_large_cache): its pages stay in use */
                        cx.lc_seen += s->npages;
                        cx.span_pages += s->npages;
                        cx.record_bytes[s->record_kind] += mheap_.spanalloc[s->record_kind].size;
                        cur = s;
                        cur_end = addr + s->npages * PAGE_SIZE;
                        continue;
                    }
                    cx.unexplained++;
                }
            }
        }
    }
    REQUIRE(cx.unexplained == p->claimed_pages,
            "%llu pages in use belong to no span and no page cache (scavengers hold %llu)",
            (unsigned long long)cx.unexplained, (unsigned long long)p->claimed_pages);
    REQUIRE(cx.pc_seen == cx.pc_pages, "page walk met %llu page-cached pages, the caches hold %llu",
            (unsigned long long)cx.pc_seen, (unsigned long long)cx.pc_pages);
    REQUIRE(cx.lc_seen == cx.lc_pages, "page walk met %llu pages of dead large spans, the large-span caches hold %llu",
            (unsigned long long)cx.lc_seen, (unsigned long long)cx.lc_pages);
    return true;
}

/* ---- Totals (quiescent) -------------------------------------------------- */

static bool check_totals(void) {
    REQUIRE(cx.seen_cached == cx.cached_spans, "%llu spans are CACHED, the caches hold %llu",
            (unsigned long long)cx.seen_cached, (unsigned long long)cx.cached_spans);
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        REQUIRE(cx.seen_partial[spc] == cx.npartial[spc], "class %u: %llu PARTIAL spans, mcentral lists %llu", spc,
                (unsigned long long)cx.seen_partial[spc], (unsigned long long)cx.npartial[spc]);
        REQUIRE(cx.seen_full[spc] == cx.nfull[spc], "class %u: %llu FULL spans, mcentral counts %llu", spc,
                (unsigned long long)cx.seen_full[spc], (unsigned long long)cx.nfull[spc]);
    }
    uint64_t inuse = atomic_load(&mheap_.pages_inuse);
    REQUIRE(cx.span_pages == inuse, "live spans have %llu pages, pages_inuse %llu", (unsigned long long)cx.span_pages,
            (unsigned long long)inuse);
    struct page_alloc *p = &mheap_.pages;
    uint64_t total = p->free_pages + p->claimed_pages + atomic_load(&mheap_.pagecache_free) + inuse;
    REQUIRE(total * PAGE_SIZE == mheap_.heap_sys,
            "free %llu + claimed %llu + page-cached %llu + in use %llu pages != HeapSys %llu pages",
            (unsigned long long)p->free_pages, (unsigned long long)p->claimed_pages,
            (unsigned long long)atomic_load(&mheap_.pagecache_free), (unsigned long long)inuse,
            (unsigned long long)(mheap_.heap_sys / PAGE_SIZE));
    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++)
        REQUIRE(mheap_.spanalloc[k].inuse == cx.record_bytes[k] + mheap_.fork_leaked_records[k],
                "span records of kind %u: %llu bytes in use, live spans need %llu (+%llu lost in a fork)", k,
                (unsigned long long)mheap_.spanalloc[k].inuse, (unsigned long long)cx.record_bytes[k],
                (unsigned long long)mheap_.fork_leaked_records[k]);
    REQUIRE(mheap_.cachealloc.inuse == cx.ncaches * mheap_.cachealloc.size + mheap_.fork_leaked_caches,
            "cache records: %llu bytes in use for %llu caches (+%llu lost in a fork)",
            (unsigned long long)mheap_.cachealloc.inuse, (unsigned long long)cx.ncaches,
            (unsigned long long)mheap_.fork_leaked_caches);

    static struct gm_memstats st; /* 1.7 KiB: kept off small thread stacks */
    memstats_read(&st, true);
    for (unsigned i = 1; i < NUM_SIZE_CLASSES; i++) {
        uint64_t want = cx.live_objs[i] - cx.window_objs[i] - cx.reuse_objs[i];
        uint64_t have = st.by_size[i].mallocs - st.by_size[i].frees;
        REQUIRE(want == have, "size class %u (%u B): Mallocs %llu - Frees %llu = %llu, but %llu objects live", i,
                (unsigned)class_to_size[i], (unsigned long long)st.by_size[i].mallocs,
                (unsigned long long)st.by_size[i].frees, (unsigned long long)have, (unsigned long long)want);
    }
    REQUIRE(st.large_mallocs - st.large_frees == cx.seen_large && st.large_alloc_bytes == cx.large_bytes,
            "large objects: %llu live (%llu bytes) by the counters, %llu spans (%llu bytes)",
            (unsigned long long)(st.large_mallocs - st.large_frees), (unsigned long long)st.large_alloc_bytes,
            (unsigned long long)cx.seen_large, (unsigned long long)cx.large_bytes);
    char why[256];
    REQUIRE(stats_check_identities(&st, why, sizeof why) == 0, "statistics: %s", why);
    return true;
}

/* ---- The check ---------------------------------------------------------- */

int heap_check(unsigned mode, char *why, size_t cap) {
    if (!atomic_load_explicit(&malloc_initialised, memory_order_acquire)) return 0;
    bool quiescent = mode == HEAP_CHECK_QUIESCENT;
    malloc_lock_all(); /* with the scavenger's run lock: no run in flight */
    memset(&cx, 0, sizeof cx);
    char local[8];
    cx.why = why && cap ? why : local;
    cx.cap = why && cap ? cap : sizeof local;
    cx.why[0] = 0;
    cx.quiescent = quiescent;
    bool ok = check_empty_cache() && check_arenas();
    if (ok && pages_verify(&mheap_.pages, cx.why, cx.cap) != 0) {
        cx.failed = true;
        ok = false;
    }
    ok = ok && check_page_caches() && check_central();
    if (ok && quiescent) {
        for (mcache *c = mcache_list_locked(); ok && c; c = c->next) ok = check_cache(c);
        ok = ok && walk_pages() && check_totals();
    }
    malloc_unlock_all();
    return ok ? 0 : -1;
}

void heap_check_or_throw(unsigned mode) {
    char why[512];
    if (heap_check(mode, why, sizeof why) != 0) throw("heap check: %s", why);
}

EXPORT int gm_check_heap(int flags) {
    char why[512];
    if (heap_check(flags & GM_CHECK_QUIESCENT ? HEAP_CHECK_QUIESCENT : HEAP_CHECK_LOCKED, why, sizeof why) == 0)
        return 0;
    print_err("gomalloc: heap check failed: %s\n", why);
    return -1;
}

/* ---- Local checks at component boundaries (debug builds) ---------------- */

void span_check_unowned(mspan *s) {
    void *b = (void *)s->base;
    unsigned cls = spanclass_sizeclass(s->spanclass);
    if (cls < 1 || cls >= NUM_SIZE_CLASSES || s->elemsize != class_to_size[cls] ||
        s->nelems != class_to_nelems[cls] || s->npages != class_to_npages[cls] ||
        s->nwords != (s->nelems + 63) / 64 || s->record_kind != span_record_kind(s->nwords) ||
        s->limit != s->base + (uintptr_t)s->nelems * s->elemsize)
        throw("span %p (class %u): record does not match its size class", b, cls);
    uint32_t live = 0;
    for (unsigned i = 0; i < s->nwords; i++) {
        uint64_t t = tail_bits(s->nelems, i), a = span_alloc_word(s, i), r = span_remote_word(s, i);
        if ((a & t) != t) throw("span %p: tail bits of word %u cleared", b, i);
        if (r & ~a) throw("span %p: remote free of a free object (word %u)", b, i);
        live += popcount64(a & ~t);
    }
    if (live != s->alloc_count) throw("span %p: %u objects allocated, alloc_count %u", b, live, s->alloc_count);
    if (span_lookup(s->base) != s) throw("span %p: not in the arena index", b);
}

void span_check_dead(mspan *s) {
    void *b = (void *)s->base;
    if (fs_state(span_free_state(s)) != SPAN_DEAD) throw("span %p: freed while %s", b, state_name(fs_state(span_free_state(s))));
    for (uintptr_t i = 0; i < s->npages; i++) {
        uintptr_t p = s->base + i * PAGE_SIZE;
        if (span_lookup(p) != s) throw("span %p: page %zu maps to another span in the arena index", b, (size_t)i);
        if (free_entry_owner(free_entry_of(p)))
            throw("span %p: page %zu still names an owner in the free map", b, (size_t)i);
    }
    if (!s->nwords) return;
    uint32_t freed = 0;
    for (unsigned i = 0; i < s->nwords; i++) {
        uint64_t t = tail_bits(s->nelems, i), a = span_alloc_word(s, i), r = span_remote_word(s, i);
        if (r != (a & ~t))
            throw("span %p dies with live objects (word %u: allocated 0x%llx, freed remotely 0x%llx)", b, i,
                  (unsigned long long)(a & ~t), (unsigned long long)r);
        freed += popcount64(r);
    }
    if (freed != s->alloc_count) throw("span %p dies with %u remote frees for %u objects", b, freed, s->alloc_count);
}

void span_check_new(mspan *s) {
    for (uintptr_t i = 0; i < s->npages; i++)
        if (span_lookup(s->base + i * PAGE_SIZE) != s)
            throw("new span %p: page %zu not recorded in the arena index", (void *)s->base, (size_t)i);
}

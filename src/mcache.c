/*
 * mcache.c: the per-thread cache.
 *
 * Owns: each thread's current span per span class (the malloc fast path
 * reads nothing else), the spans the thread owns besides those, its page
 * cache, its statistics counters, and thread setup and exit.
 * Go counterpart: mcache.go (per P in Go; per thread here, since C threads
 * are not multiplexed over a fixed set of Ps).
 *
 * Span ownership (our addition; Go reclaims by sweeping and hands every
 * used-up span back to mcentral): a span this thread allocated from stays
 * this thread's until it is empty or the thread exits. The thread keeps it
 * on one of three places per span class:
 *   alloc[spc]    the current span, allocation window loaded;
 *   partial[spc]  owned spans with free objects, reused before mcentral;
 *   full[spc]     owned spans with every object in use.
 * The owner frees into all of them with plain stores (mspan.h), so a thread
 * that frees what it allocated never executes an atomic instruction. Other
 * threads' frees set remote bits and are counted in the span's free_state
 * (in batches, see mcache_remote_pending); the first count after each
 * drain pushes the span onto this cache's notify stack, which the owner
 * drains when it next needs a span: their objects become reusable then.
 * Measured on the churn and server workloads of bench/, this is what lets
 * the fast paths stay atomic-free (see README.md, "Design").
 *
 * Each free by the owner decrements span.countdown; at zero the free path
 * calls mcache_free_event, which files the span again by its live objects.
 * An owned full span counts down to the moment an eighth of it is free (it
 * becomes partial: worth switching to), an owned partial span from its live
 * objects (its last free sends it back to the heap), the current span from
 * 2^32 - 1 (which also tells whether anything was freed during a pass).
 *
 * Threads: the cache pointer is initial-exec TLS, starting at mcache_empty
 * (every slot the empty span), so the first malloc of a thread lands in the
 * slow path, which sets the thread up. A pthread key destructor hands
 * everything back at thread exit. Threads without a cache of their own (one
 * being set up, or past its exit) allocate from a shared fallback cache
 * under a lock.
 *
 * Out of memory: a thread whose cache cannot be allocated allocates from
 * the fallback cache, and tries again 1024 allocations later.
 * The fallback cache is made by mcache_init; if it cannot be, start-up
 * fails (malloc_init) and every allocation returns NULL with ENOMEM until
 * it succeeds. Without a pthread key (all taken) every thread uses the
 * fallback cache. A refill that finds no span returns NULL, errno ENOMEM,
 * with the cache as consistent as before (the used-up span is filed).
 *
 * Locking: a cache is touched only by its thread, except notify (lock-free
 * stack), the statistics (read relaxed by stats.c) and the list of caches
 * (list_lock, a leaf lock). The fallback cache is guarded by fallback_lock,
 * the outermost lock of the library.
 */
#include "mcache.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "check.h"
#include "malloc.h"
#include "mcentral.h"
#include "mheap.h"
#include "options.h"
#include "print.h"
#include "scavenge.h"
#include "secure.h"

#define EMPTY_SLOT {.alloc = &emptyspan, .window_word = NO_WINDOW}
mcache mcache_empty = {.blocks = {[0 ... NUM_SIZE_CLASSES - 1] = {.scan = EMPTY_SLOT, .noscan = EMPTY_SLOT}}};
__thread mcache *tls_cache __attribute__((tls_model("initial-exec"))) = &mcache_empty;

enum { THREAD_NEW = 0, THREAD_ACTIVE = 1, THREAD_SETUP = 2, THREAD_DEAD = 3 };
static __thread int tls_state __attribute__((tls_model("initial-exec")));
/* After its cache could not be made: allocations left before trying again
 * (each try is a refused mmap or two). */
static __thread unsigned tls_retry_in __attribute__((tls_model("initial-exec")));
#define CACHE_RETRY_EVERY 1024

struct orphan_stats orphan_stats;
struct orphan_free_stripe orphan_free_stripes[ORPHAN_STRIPES];

static mutex list_lock;
static mcache *all_caches;
static mcache *fallback;
static mutex fallback_lock;
static pthread_key_t cache_key;
static bool have_key; /* cache_key exists: threads may have caches */

/* ---- Owned-span lists -------------------------------------------------- */

static mspan **list_head(mcache *c, mspan *s) {
    return s->place == PLACE_PARTIAL ? &c->partial[s->spanclass] : &c->full[s->spanclass];
}

/* A kept empty span (file_owned_span): on the partial list, countdown
 * COUNTDOWN_EMPTY (no object can be freed into it), counted in
 * c->empty_bytes. */
static inline bool kept_empty(const mspan *s) {
    return s->place == PLACE_PARTIAL && s->countdown == COUNTDOWN_EMPTY;
}

static void owned_push(mcache *c, mspan *s, uint8_t place) {
    s->place = place;
    if (kept_empty(s)) c->empty_bytes += s->npages * PAGE_SIZE;
    mspan **head = list_head(c, s);
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static void owned_remove(mcache *c, mspan *s) {
    if (kept_empty(s)) c->empty_bytes -= s->npages * PAGE_SIZE;
    mspan **head = list_head(c, s);
    if (s->prev)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->place = PLACE_NONE;
}

/* s, the current span of class spc, stops being current. */
static mspan *uncache_current(mcache *c, uint8_t spc) {
    struct cache_class *k = cache_class_of(c, spc);
    mspan *s = k->alloc;
    if (s == &emptyspan) return NULL;
    span_uncache_window(k, s);
    k->alloc = &emptyspan;
    s->place = PLACE_NONE;
    return s;
}

/* Absorb the remote frees of s, owned by c (its window, if current, claims
 * some slots of its allocation bits). */
static uint32_t absorb_owned(mcache *c, mspan *s) {
    struct cache_class *k = cache_class_of(c, s->spanclass);
    unsigned ww = k->alloc == s ? k->window_word : NO_WINDOW;
    return span_absorb_remote(s, ww, cache_window_for(k, s, ww));
}

/* Objects that must be free in an owned span before the owner switches to
 * it: one eighth. Switching spans costs a rescan, so a span with a single
 * free slot is not worth taking (it would be used up by the next malloc);
 * up to 1/8 of a span may sit unused instead. */
static inline uint32_t reuse_threshold(const mspan *s) { return s->nelems >= 16 ? s->nelems / 8u : 1u; }

/* File s, an owned span that is not (or no longer) current, by how many of
 * its objects live: spans with at least the reuse threshold free wait on
 * the partial list, others on the full list; empty spans go back to the
 * heap, except that a thread keeps up to EMPTY_KEEP_BYTES (mcache.h) of
 * them on its partial lists for its next refills. (A producer whose
 * objects another thread frees empties spans as fast as it needs new ones:
 * releasing each and taking a new one from the heap cost a page-allocator
 * round trip, span setup and tagging per span.) countdown is set to the
 * number of frees after which this must be decided again. */
static void file_owned_span(mcache *c, mspan *s) {
    if (s->place == PLACE_PARTIAL || s->place == PLACE_FULL) owned_remove(c, s);
    uint32_t live = span_live_objects(s);
    uint32_t free = s->nelems - live, thr = reuse_threshold(s);
    if (live == 0 && c->empty_bytes + s->npages * PAGE_SIZE > EMPTY_KEEP_BYTES) {
        s->place = PLACE_NONE;
        mcentral_release(s, c);
    } else if (free >= thr) {
        s->countdown = live ? live : COUNTDOWN_EMPTY;
        owned_push(c, s, PLACE_PARTIAL);
    } else {
        s->countdown = thr - free;
        owned_push(c, s, PLACE_FULL);
    }
}

void mcache_keep_full(mcache *c, mspan *s) { file_owned_span(c, s); }

/* A local free brought span.countdown to zero (see the header comment). */
void mcache_free_event(mcache *c, mspan *s) {
    if (s->place == PLACE_PARTIAL || s->place == PLACE_FULL)
        file_owned_span(c, s);
    else
        s->countdown = UINT32_MAX; /* the current span: the counter wrapped */
}

/* ---- Reuse lists -------------------------------------------------------------
 *
 * Our departure from Go's bitmaps-only objects, after Go's own explicit-free
 * experiment (runtimefreegc, per-P reusable lists): an object this thread
 * frees into a span it owns is first pushed on a per-class stack in the
 * cache, and malloc pops from there before it looks at the span's bitmap.
 * The freed object is reused while it is still in the CPU cache, and a
 * program that frees and allocates in a steady churn rarely touches a span.
 * To the span, objects on the stack are still in use. The stack is bounded
 * (32 KiB or 64 objects per class); when it is full, its older half is freed
 * into the spans' bitmaps. The stack lives in the cache, not in the freed
 * objects (jemalloc's tcache bins do the same), so writes into freed memory
 * cannot corrupt the allocator. Word 1 of every free object holds the free
 * tag, address + FREE_TAG_OFFSET (mcache.h), which lets free tell an object in use
 * without the bitmaps and notice a second free at once. The 8-byte class
 * has no word 1, no tag and no stack: it frees straight into the bitmap.
 */

uint32_t reuse_limit_of(uint8_t spc) {
    unsigned size = class_to_size[spanclass_sizeclass(spc)];
    if (size < 16 || !(spc & 1)) return 0; /* the scan classes are the GC mode's */
    if (options.secure) return 0;          /* every free through the bitmaps (secure.c) */
    unsigned n = (32u << 10) / size;
    return n < 2 ? 2 : n > REUSE_MAX ? REUSE_MAX : n;
}

/* Clear object p's allocation bit in s (owned by this thread). */
static void free_to_span(mcache *c, mspan *s, uintptr_t p) {
    uintptr_t idx = span_object_index(s, p - s->base);
    unsigned w = (unsigned)(idx >> 6);
    span_set_alloc_word(s, w, span_alloc_word(s, w) & ~((uint64_t)1 << (idx & 63)));
    if (--s->countdown == 0) mcache_free_event(c, s);
}

/* Give the oldest `count` objects of a reuse stack back to their spans. */
static void flush_reuse(mcache *c, uint8_t spc, uint32_t count) {
    struct cache_class *k = cache_class_of(c, spc);
    uint32_t depth = reuse_depth(k);
    if (count > depth) count = depth;
    void **stack = reuse_stack(k);
    for (uint32_t i = 0; i < count; i++) {
        void **p = stack[i]; /* stays tagged: free (mspan.h) */
        free_to_span(c, span_lookup((uintptr_t)p), (uintptr_t)p);
    }
    reuse_word_set(k, k->reuse_word - count * REUSE_POP);
    stat_add(&c->counts[spc].nflushed, count);
    memmove(stack, stack + count, (depth - count) * sizeof(void *));
}

void mcache_free_local(mcache *c, mspan *s, void *ptr) {
    struct cache_class *k = cache_class_of(c, s->spanclass);
    if (!k->reuse_end) {
        stat_add(&c->counts[s->spanclass].nfree, 1);
        if (unlikely(options.secure) && s->elemsize >= 16) secure_poison(s, (uintptr_t)ptr);
        if (s->elemsize >= 16) ((uintptr_t *)ptr)[1] = free_tag((uintptr_t)ptr); /* free: tagged (mspan.h) */
        free_to_span(c, s, (uintptr_t)ptr);
        return;
    }
    uint32_t limit = k->reuse_end / sizeof(void *);
    if (reuse_depth(k) >= limit) flush_reuse(c, s->spanclass, limit / 2 ? limit / 2 : 1);
    void **p = ptr;
    reuse_stack(k)[reuse_depth(k)] = p;
    reuse_word_add(k, REUSE_PUSH);
    p[1] = (void *)free_tag((uintptr_t)p);
}

void mcache_free_overflow(mcache *c, mspan *s, void *ptr) {
    if (!cache_class_of(c, s->spanclass)->reuse_end) {
        free_slow(ptr); /* no tag to trust: the bitmaps decide */
        return;
    }
    mcache_free_local(c, s, ptr);
}

bool mcache_reuse_contains(mcache *c, uint8_t spc, const void *p) {
    struct cache_class *k = cache_class_of(c, spc);
    void **stack = reuse_stack(k);
    for (uint32_t i = 0, n = reuse_depth(k); i < n; i++)
        if (stack[i] == p) return true;
    return false;
}

void mcache_drain_notify(mcache *c) {
    if (!atomic_load_explicit(&c->notify, memory_order_relaxed)) return;
    mspan *list = atomic_exchange_explicit(&c->notify, NULL, memory_order_acq_rel);
    while (list) {
        mspan *s = list;
        list = atomic_load_explicit(&s->notify_next, memory_order_relaxed);
        atomic_fetch_and_explicit(&s->free_state, ~FS_NOTIFY, memory_order_acq_rel);
        uint32_t n = absorb_owned(c, s);
        if (!n) continue;
        if (s->place == PLACE_CURRENT) {
            s->countdown -= n; /* marks the pass as having frees to rescan */
            continue;
        }
        if (s->place != PLACE_PARTIAL && s->place != PLACE_FULL) continue;
        if (n >= s->countdown)
            file_owned_span(c, s);
        else
            s->countdown -= n;
    }
}

/* ---- Remote frees, counted in batches ------------------------------------
 *
 * A remote free is two atomic steps on two cache lines of the span: its
 * remote bit (which catches a double free at once) and its count in
 * free_state (which tells the owner, through NOTIFY and its notify stack,
 * or mcentral, through the transitions of unowned spans). A thread that
 * frees many objects of one span, as a consumer does in the order its
 * producer allocated them, sets every bit at once but adds the counts a
 * batch at a time: per span class it remembers the span of its last remote
 * free and how many frees into it are still uncounted, and counts them when
 * a free of that class goes to another span, when an entry reaches its
 * limit (remote_limit: an eighth of the span), every REMOTE_FLUSH_EVERY
 * entry replacements, when the thread refills a span class, trims
 * (gm_release_memory) or exits. Measured on producer/consumer at 4 threads
 * (bench/prodcons): 1.25x faster than counting every free, same peak RSS.
 *
 * An uncounted free is what the protocol already allows of a thread paused
 * between its two steps: the count of a span with uncounted frees cannot
 * reach the number of objects it has allocated, so the span cannot die (and
 * its record cannot be reused) before they are counted; its owner may
 * absorb their bits early (its count goes below zero until they are
 * counted). A thread without a cache gets one on its first remote free, to
 * hold its entries; if it cannot, its frees are counted at once.
 */
/* Drop every entry without counting it (a new cache; the fork child). */
static void clear_remote(mcache *c) {
    memset(c->remote, 0, sizeof c->remote);
    memset(c->remote_mask, 0, sizeof c->remote_mask);
    c->remote_switches = 0;
}

void mcache_remote_pending(mcache *c, mspan *s) {
    if (c == &mcache_empty) {
        int saved = errno;
        c = mcache_for_thread();
        errno = saved;
        if (!c) {
            span_count_remote(s, 1);
            return;
        }
    }
    if (++c->remote_switches >= REMOTE_FLUSH_EVERY) mcache_flush_remote(c);
    unsigned spc = s->spanclass;
    struct remote_pending *r = &c->remote[spc];
    mspan *old = r->span;
    uint32_t n = r->n;
    /* The entry is whole before the old one is counted: counting may reach
     * mcentral and the heap (a span that dies), and nothing reached from
     * there may find this cache's entries half written. */
    r->span = s;
    r->n = 1;
    r->limit = remote_limit(s);
    c->remote_mask[spc / 64] |= (uint64_t)1 << (spc % 64);
    if (old) span_count_remote(old, n);
}

void mcache_flush_remote(mcache *c) {
    c->remote_switches = 0;
    for (unsigned i = 0; i < (NUM_SPAN_CLASSES + 63) / 64; i++) {
        while (c->remote_mask[i]) {
            unsigned spc = i * 64 + (unsigned)__builtin_ctzll(c->remote_mask[i]);
            c->remote_mask[i] &= c->remote_mask[i] - 1;
            struct remote_pending *r = &c->remote[spc];
            mspan *s = r->span;
            uint32_t n = r->n;
            r->span = NULL;
            r->n = 0;
            span_count_remote(s, n);
        }
    }
}

uint32_t mcache_remote_pending_for(mspan *s) {
    uint32_t n = 0;
    for (mcache *c = all_caches; c; c = c->next)
        if (c->remote[s->spanclass].span == s) n += c->remote[s->spanclass].n;
    return n;
}

/* The window of class spc is used up: load another (the next word of the
 * current span, a rescan of it, an owned partial span, or a span from
 * mcentral). Returns false when the heap cannot grow. */
static bool refill(mcache *c, uint8_t spc) {
    struct cache_class *k = cache_class_of(c, spc);
    mspan *s = k->alloc;
    if (s != &emptyspan) {
        if (span_next_window(k, s)) return true;
        uncache_current(c, spc);
        file_owned_span(c, s);
    }
    if (remote_any(c)) mcache_flush_remote(c); /* (our own spans' frees among them) */
    mcache_drain_notify(c);
    while ((s = c->partial[spc]) != NULL) {
        owned_remove(c, s);
        if (span_rescan(k, s)) {
            s->place = PLACE_CURRENT;
            return true;
        }
        file_owned_span(c, s);
    }
    s = mcentral_cache_span(spc, c);
    if (!s) return false;
    s->place = PLACE_CURRENT;
    return true;
}

static void *cache_alloc(mcache *c, uint8_t spc) {
    struct cache_class *k = cache_class_of(c, spc);
    if (reuse_depth(k)) {
        void **p = reuse_stack(k)[reuse_depth(k) - 1];
        reuse_word_add(k, -REUSE_POP);
        p[1] = NULL;
        return p;
    }
    if (!k->window && !refill(c, spc)) {
        errno = ENOMEM;
        return NULL;
    }
    return cache_window_pop(k);
}

void *mcache_alloc_slow(uint8_t spc, size_t size) {
    mcache *c = tls_cache;
    void *p;
    if (c != &mcache_empty || (c = mcache_for_thread()) != NULL) {
        p = cache_alloc(c, spc);
    } else if (atomic_load_explicit(&malloc_initialised, memory_order_acquire)) {
        lock(&fallback_lock);
        p = cache_alloc(fallback, spc);
        unlock(&fallback_lock);
    } else {
        p = NULL; /* start-up failed */
    }
    if (unlikely(!p)) return malloc_failed(1, size);
    /* After the object is chosen: starting the thread allocates, and a
     * caller may rely on what it saw before this call (calloc: the reuse
     * stack was empty, so the object is fresh) */
    scavenge_start_if_wanted();
    return p;
}

void *mcache_alloc_slot_slow(size_t size, struct cache_class *k) {
    return mcache_alloc_slow(cache_slot_spanclass((unsigned)((char *)k - (char *)tls_cache)), size);
}

/* ---- Threads ----------------------------------------------------------- */

static mcache *new_cache(bool is_fallback) {
    mcache *c = fixalloc_alloc(&mheap_.cachealloc);
    if (!c) return NULL;
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++) {
        struct cache_class *k = cache_class_of(c, i);
        k->alloc = &emptyspan;
        k->elemsize = class_to_size[spanclass_sizeclass((uint8_t)i)];
        k->reuse_end = reuse_limit_of((uint8_t)i) * (uint32_t)sizeof(void *);
        k->tag_off = k->elemsize >= 16 ? 8 : 0;
        k->window_word = NO_WINDOW;
    }
    clear_remote(c);
    c->fallback = is_fallback;
    c->owner_id = is_fallback ? FALLBACK_OWNER_ID : thread_id();
    lock(&list_lock);
    c->prev = NULL;
    c->next = all_caches;
    if (all_caches) all_caches->prev = c;
    all_caches = c;
    unlock(&list_lock);
    return c;
}

/* Objects of span class spc handed out and freed by c's thread (see struct
 * cache_class; relaxed reads, exact when the thread is quiet). */
static uint64_t class_mallocs(mcache *c, uint8_t spc) {
    struct cache_class *k = cache_class_of(c, spc);
    uint64_t rw = __atomic_load_n(&k->reuse_word, __ATOMIC_RELAXED);
    return __atomic_load_n(&k->nmalloc, __ATOMIC_RELAXED) + (rw >> REUSE_DEPTH_BITS) -
           __atomic_load_n(&c->counts[spc].nflushed, __ATOMIC_RELAXED) - (rw & REUSE_DEPTH_MASK) / sizeof(void *);
}

static uint64_t class_frees(mcache *c, uint8_t spc) {
    return reuse_pushes(cache_class_of(c, spc)) +
           __atomic_load_n(&c->counts[spc].nfree, __ATOMIC_RELAXED);
}

static void fold_into_orphans(mcache *c) {
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        unsigned i = spanclass_sizeclass((uint8_t)spc);
        atomic_fetch_add_explicit(&orphan_stats.nmalloc[i], class_mallocs(c, (uint8_t)spc), memory_order_relaxed);
        atomic_fetch_add_explicit(&orphan_stats.nfree[i], class_frees(c, (uint8_t)spc), memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&orphan_stats.large_nmalloc, c->large_nmalloc, memory_order_relaxed);
    atomic_fetch_add_explicit(&orphan_stats.large_nfree, c->large_nfree, memory_order_relaxed);
    atomic_fetch_add_explicit(&orphan_stats.large_alloc_bytes, c->large_alloc_bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&orphan_stats.large_free_bytes, c->large_free_bytes, memory_order_relaxed);
}

static void delete_cache(mcache *c) {
    /* Nothing may still belong to the cache: an owned span left behind would
     * look owned by whichever thread gets this record next. */
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        struct cache_class *k = cache_class_of(c, spc);
        if (k->alloc != &emptyspan || c->partial[spc] || c->full[spc] || reuse_depth(k))
            throw("cache %p deleted with spans of class %u left", (void *)c, spc);
    }
    if (atomic_load(&c->notify)) throw("cache %p deleted with a pending notify stack", (void *)c);
    lock(&list_lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        all_caches = c->next;
    if (c->next) c->next->prev = c->prev;
    fold_into_orphans(c);
    unlock(&list_lock);
    fixalloc_free(&mheap_.cachealloc, c);
}

mcache *mcache_for_thread(void) {
    if (tls_state != THREAD_NEW) return NULL; /* being set up, or exited */
    if (!malloc_init() || !have_key) return NULL;
    if (tls_retry_in) {
        tls_retry_in--;
        return NULL;
    }
    tls_state = THREAD_SETUP;
    mcache *c = new_cache(false);
    if (!c) {
        tls_state = THREAD_NEW;
        tls_retry_in = CACHE_RETRY_EVERY;
        return NULL;
    }
    /* pthread_setspecific may allocate (key blocks past the first 32):
     * that nested malloc sees THREAD_SETUP and uses the fallback. */
    pthread_setspecific(cache_key, c);
    tls_cache = c;
    tls_state = THREAD_ACTIVE;
    malloc_register_fork_handlers(); /* if start-up could not */
    return c;
}

/* ---- The large-span cache ----------------------------------------------- */

/* A freed large span keeps its record, its pages (still allocated in the
 * page allocator, still Ready) and its entries in the arena index; its
 * state is DEAD, so a second free of the object is reported as a double
 * free, exactly as when the pages are back in the heap. Its pages stay in
 * mheap_.pages_inuse (no shared counter is touched); statistics move them
 * from HeapInuse to HeapIdle by summing large_cached_pages over the caches. A request takes a span of
 * npages up to npages + npages/8 pages (reuse across nearby sizes); the
 * caller trims a larger one to size, so usable sizes stay exact. */

mspan *mcache_large_get(mcache *c, uintptr_t npages) {
    if (npages > LARGE_CACHE_MAX_PAGES || !c->large_cached_pages) return NULL;
    uintptr_t last = npages + npages / 8;
    if (last > LARGE_CACHE_MAX_PAGES) last = LARGE_CACHE_MAX_PAGES;
    mspan *s = NULL;
    lock(&c->pcache_lock);
    for (uintptr_t n = npages; n <= last; n++) {
        if ((s = c->large_bins[n]) != NULL) {
            c->large_bins[n] = s->next;
            stat_add(&c->large_cached_pages, -n);
            break;
        }
    }
    unlock(&c->pcache_lock);
    return s;
}

bool mcache_large_put(mcache *c, mspan *s) {
    uintptr_t n = s->npages;
    if (n > LARGE_CACHE_MAX_PAGES || c == &mcache_empty) return false;
    lock(&c->pcache_lock);
    bool fits = c->large_cached_pages + n <= LARGE_CACHE_LIMIT_PAGES;
    if (fits) {
        s->next = c->large_bins[n];
        c->large_bins[n] = s;
        stat_add(&c->large_cached_pages, n);
    }
    unlock(&c->pcache_lock);
    return fits;
}

/* Give c's page cache and large spans back to the heap (takes pcache_lock;
 * the spans are freed after it is dropped: freeing pokes the scavenger,
 * which may scavenge inline, taking the heap lock). */
static void flush_page_caches(mcache *c) {
    mspan *spans = NULL;
    lock(&c->pcache_lock);
    mheap_flush_pagecache(&c->pcache);
    for (uintptr_t n = 0; c->large_cached_pages && n <= LARGE_CACHE_MAX_PAGES; n++) {
        mspan *s;
        while ((s = c->large_bins[n]) != NULL) {
            c->large_bins[n] = s->next;
            stat_add(&c->large_cached_pages, -n);
            s->next = spans;
            spans = s;
        }
    }
    unlock(&c->pcache_lock);
    while (spans) {
        mspan *s = spans;
        spans = s->next;
        mheap_free_span(s);
    }
}

void mcache_release_empty(void) {
    mcache *c = tls_cache;
    if (c == &mcache_empty) return;
    mcache_flush_remote(c);
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES && c->empty_bytes; spc++) {
        mspan *next;
        for (mspan *s = c->partial[spc]; s; s = next) {
            next = s->next;
            if (!kept_empty(s)) continue;
            owned_remove(c, s);
            mcentral_release(s, c); /* may drain the notify stack, which files spans: start the list again */
            next = c->partial[spc];
        }
    }
}

void mcache_release_all(mcache *c) {
    mcache_flush_remote(c);
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) flush_reuse(c, (uint8_t)spc, REUSE_MAX);
    mcache_drain_notify(c);
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        mspan *s = uncache_current(c, (uint8_t)spc);
        if (s) mcentral_release(s, c);
    }
    /* Releasing a span drains the notify stack, which may move other owned
     * spans between lists (a full span that received frees becomes partial,
     * in a list already passed over): go round until every list is empty. */
    for (bool again = true; again;) {
        again = false;
        for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
            mspan *s;
            while ((s = c->partial[spc]) != NULL || (s = c->full[spc]) != NULL) {
                owned_remove(c, s);
                mcentral_release(s, c);
                again = true;
            }
        }
    }
    flush_page_caches(c);
}

void mcache_flush_all_page_caches(void) {
    lock(&list_lock);
    for (mcache *c = all_caches; c; c = c->next) flush_page_caches(c);
    unlock(&list_lock);
}

void mcache_thread_exit(void *arg) {
    mcache *c = arg;
    int saved = errno;
    /* From here on this thread allocates from the fallback cache. */
    tls_cache = &mcache_empty;
    tls_state = THREAD_DEAD;
    mcache_release_all(c);
    delete_cache(c);
    if (DEBUG_CHECKS) heap_check_or_throw(HEAP_CHECK_LOCKED);
    errno = saved;
}

int mcache_init(void) {
    mutex_reinit(&list_lock);
    mutex_reinit(&fallback_lock);
    fallback = new_cache(true);
    if (!fallback) return -1;
    have_key = pthread_key_create(&cache_key, mcache_thread_exit) == 0;
    if (!have_key && options.verbose) print_err("gomalloc: no pthread key left: every thread uses the shared cache\n");
    return 0;
}

void mcache_sum_stats(struct class_stats out[NUM_SIZE_CLASSES], uint64_t large[5], uint32_t *nthreads,
                      bool locked) {
    memset(out, 0, sizeof(struct class_stats) * NUM_SIZE_CLASSES);
    memset(large, 0, sizeof(uint64_t) * 5);
    uint32_t n = 0;
    if (!locked) lock(&list_lock);
    for (mcache *c = all_caches; c; c = c->next) {
        for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
            unsigned i = spanclass_sizeclass((uint8_t)spc);
            out[i].nmalloc += class_mallocs(c, (uint8_t)spc);
            out[i].nfree += class_frees(c, (uint8_t)spc);
        }
        large[0] += __atomic_load_n(&c->large_nmalloc, __ATOMIC_RELAXED);
        large[1] += __atomic_load_n(&c->large_nfree, __ATOMIC_RELAXED);
        large[2] += __atomic_load_n(&c->large_alloc_bytes, __ATOMIC_RELAXED);
        large[3] += __atomic_load_n(&c->large_free_bytes, __ATOMIC_RELAXED);
        large[4] += __atomic_load_n(&c->large_cached_pages, __ATOMIC_RELAXED);
        if (!c->fallback) n++;
        /* Slots still free in the current windows were counted as allocated
         * when the windows were loaded (racy read: exact at quiescence). */
        for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
            struct cache_class *k = cache_class_of(c, spc);
            unsigned left = (unsigned)__builtin_popcountll(__atomic_load_n(&k->window, __ATOMIC_RELAXED));
            struct class_stats *o = &out[spanclass_sizeclass((uint8_t)spc)];
            o->nmalloc = o->nmalloc >= left ? o->nmalloc - left : 0;
        }
    }
    for (unsigned i = 0; i < NUM_SIZE_CLASSES; i++) {
        out[i].nmalloc += atomic_load_explicit(&orphan_stats.nmalloc[i], memory_order_relaxed);
        out[i].nfree += atomic_load_explicit(&orphan_stats.nfree[i], memory_order_relaxed);
        for (unsigned j = 0; j < ORPHAN_STRIPES; j++)
            out[i].nfree += atomic_load_explicit(&orphan_free_stripes[j].nfree[i], memory_order_relaxed);
    }
    large[0] += atomic_load_explicit(&orphan_stats.large_nmalloc, memory_order_relaxed);
    large[1] += atomic_load_explicit(&orphan_stats.large_nfree, memory_order_relaxed);
    large[2] += atomic_load_explicit(&orphan_stats.large_alloc_bytes, memory_order_relaxed);
    large[3] += atomic_load_explicit(&orphan_stats.large_free_bytes, memory_order_relaxed);
    if (!locked) unlock(&list_lock);
    *nthreads = n;
}

mcache *mcache_list_locked(void) { return all_caches; }
mcache *mcache_fallback(void) { return fallback; }

/* ---- fork ------------------------------------------------------------ */

void mcache_fork_prepare(void) { lock(&fallback_lock); }
void mcache_fork_parent(void) { unlock(&fallback_lock); }

/* Between the mcentral locks and the heap lock (see lock.h). */
void mcache_fork_lock_caches(void) {
    lock(&list_lock);
    for (mcache *c = all_caches; c; c = c->next) lock(&c->pcache_lock);
}
void mcache_fork_unlock_caches(void) {
    for (mcache *c = all_caches; c; c = c->next) unlock(&c->pcache_lock);
    unlock(&list_lock);
}

/* Child: only the forking thread survives; the caches of the others will
 * never be used again. Their owners may have been anywhere when the fork
 * happened, including between two steps of moving a span from one owned
 * list to another (the span then on no list, or on a half-linked one), and
 * remote frees may have been half done (bit set, count or notify push
 * missing). So their lists are not walked: every span of the heap is
 * (mheap_for_each_span), and each is made consistent:
 *   - spans of the surviving caches (the forking thread's, the fallback's):
 *     remote-free counts recounted from the bits, NOTIFY set and the span
 *     on its owner's notify stack exactly when it has remote frees;
 *   - spans of the dead caches: window written back, remote frees
 *     absorbed, then unowned (partial, full) or freed (mcentral.c);
 *   - unowned spans: counts recounted, a transition a remote free was
 *     making finished.
 * Objects on the dead caches' reuse stacks are freed first (tagged entries
 * only: an entry being pushed or popped may be stale; they keep the tag,
 * as every free object does). What the dead
 * threads were allocating at the moment of the fork, and pages a scavenger
 * had claimed, stay allocated: small leaks, never corruption. */
static bool survivor(mcache *c) { return c == tls_cache || c == fallback; }
static bool surviving_owner(uintptr_t id) { return id == tls_cache->owner_id || id == fallback->owner_id; }

static void fork_free_reuse(mcache *c) {
    for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
        struct cache_class *k = cache_class_of(c, spc);
        uint32_t n = reuse_depth(k) < REUSE_MAX ? reuse_depth(k) : REUSE_MAX;
        for (uint32_t i = 0; i < n; i++) {
            void **p = reuse_stack(k)[i];
            mspan *s = span_lookup((uintptr_t)p);
            if (!s || span_owner(s) != c || fs_state(span_free_state(s)) != SPAN_CACHED || !s->elemsize ||
                (uintptr_t)p < s->base || (uintptr_t)p >= s->limit || ((uintptr_t)p - s->base) % s->elemsize ||
                !reuse_tagged(p))
                continue;
            uintptr_t idx = ((uintptr_t)p - s->base) / s->elemsize; /* stays tagged: free */
            unsigned w = (unsigned)(idx >> 6);
            span_set_alloc_word(s, w, span_alloc_word(s, w) & ~((uint64_t)1 << (idx & 63)));
        }
        reuse_word_set(k, k->reuse_word & ~REUSE_DEPTH_MASK);
    }
}

static void fork_fix_span(mspan *s, void *arg) {
    (void)arg;
    unsigned st = fs_state(span_free_state(s));
    if (st == SPAN_LARGE) {
        /* a large span still being recorded in the arena index: its
         * allocation never returns; finish the record and free it */
        for (uintptr_t i = 1; i < s->npages; i++)
            if (span_lookup(s->base + i * PAGE_SIZE) != s) {
                arena_set_spans(s->base, s->npages, s);
                uint64_t v = span_free_state(s);
                atomic_store_explicit(&s->free_state, fs_with_state(v, SPAN_DEAD) + FS_GEN_ONE, memory_order_relaxed);
                mheap_free_span(s);
                break;
            }
        return;
    }
    if (st == SPAN_PARTIAL || st == SPAN_FULL) {
        mcentral_fork_unowned(s);
        return;
    }
    if (st != SPAN_CACHED) return;
    mcache *o = span_owner(s);
    if (survivor(o)) {
        if (mcentral_fork_recount(s)) {
            atomic_fetch_or_explicit(&s->free_state, FS_NOTIFY, memory_order_relaxed);
            atomic_store_explicit(&s->notify_next, atomic_load_explicit(&o->notify, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(&o->notify, s, memory_order_relaxed);
        }
        return;
    }
    struct cache_class *k = cache_class_of(o, s->spanclass);
    span_uncache_window(k, s); /* if it is k's current span */
    mcentral_fork_orphan(s);
}

/* The dead threads' counters may have been torn mid-update (an object
 * taken, its count not yet written): balance the books of the child against
 * the objects its heap holds, through the orphan counters. */
struct live_count {
    uint64_t objs[NUM_SIZE_CLASSES];
    uint64_t large_n, large_bytes;
};

static void count_objects(mspan *s, void *arg) {
    struct live_count *t = arg;
    if (fs_state(span_free_state(s)) == SPAN_LARGE) {
        t->large_n++;
        t->large_bytes += s->elemsize;
        return;
    }
    uint64_t remote = 0;
    for (unsigned w = 0; w < s->nwords; w++) remote += (uint64_t)__builtin_popcountll(span_remote_word(s, w));
    t->objs[spanclass_sizeclass(s->spanclass)] += span_live_objects(s) - remote;
}

static void fork_balance_stats(void) {
    static struct live_count t;
    static struct class_stats have[NUM_SIZE_CLASSES];
    memset(&t, 0, sizeof t);
    mheap_for_each_span(count_objects, &t);
    for (mcache *c = all_caches; c; c = c->next)
        for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
            struct cache_class *k = cache_class_of(c, spc);
            t.objs[spanclass_sizeclass((uint8_t)spc)] -= (uint64_t)__builtin_popcountll(k->window) + reuse_depth(k);
        }
    uint64_t large[5];
    uint32_t n;
    mcache_sum_stats(have, large, &n, true);
    for (unsigned i = 1; i < NUM_SIZE_CLASSES; i++) {
        uint64_t h = have[i].nmalloc - have[i].nfree;
        if (t.objs[i] > h)
            atomic_fetch_add_explicit(&orphan_stats.nmalloc[i], t.objs[i] - h, memory_order_relaxed);
        else if (t.objs[i] < h)
            atomic_fetch_add_explicit(&orphan_stats.nfree[i], h - t.objs[i], memory_order_relaxed);
    }
    uint64_t hn = large[0] - large[1], hb = large[2] - large[3];
    if (t.large_n > hn) atomic_fetch_add_explicit(&orphan_stats.large_nmalloc, t.large_n - hn, memory_order_relaxed);
    if (t.large_n < hn) atomic_fetch_add_explicit(&orphan_stats.large_nfree, hn - t.large_n, memory_order_relaxed);
    if (t.large_bytes > hb)
        atomic_fetch_add_explicit(&orphan_stats.large_alloc_bytes, t.large_bytes - hb, memory_order_relaxed);
    if (t.large_bytes < hb)
        atomic_fetch_add_explicit(&orphan_stats.large_free_bytes, hb - t.large_bytes, memory_order_relaxed);
}

void mcache_fork_child(void) {
    mutex_reinit(&fallback_lock);
    mutex_reinit(&list_lock);
    for (mcache *c = all_caches; c; c = c->next) mutex_reinit(&c->pcache_lock);
    for (mcache *c = all_caches; c; c = c->next) {
        if (survivor(c))
            atomic_store_explicit(&c->notify, NULL, memory_order_relaxed); /* rebuilt by the walk */
        else
            fork_free_reuse(c);
        clear_remote(c); /* the walk counts every span's remote bits */
    }
    mheap_for_each_span(fork_fix_span, NULL);
    /* the dead threads' spans are unowned now, and so must their pages be
     * in the free map, also of a span a dead thread was taking */
    arena_fork_clear_free_map(surviving_owner);
    for (;;) {
        mcache *victim = NULL;
        for (mcache *c = all_caches; c; c = c->next)
            if (!survivor(c)) {
                victim = c;
                break;
            }
        if (!victim) break;
        for (unsigned spc = 0; spc < NUM_SPAN_CLASSES; spc++) {
            struct cache_class *k = cache_class_of(victim, spc);
            k->alloc = &emptyspan;
            k->window = 0;
            k->window_word = NO_WINDOW;
            victim->partial[spc] = victim->full[spc] = NULL;
        }
        atomic_store_explicit(&victim->notify, NULL, memory_order_relaxed);
        flush_page_caches(victim); /* its page cache and large spans */
        delete_cache(victim);
    }
    uint64_t ncaches = 0;
    /* every page cache and large-span cache too: the reclaim below frees
     * pages in use that belong to no live span (a cached large span is dead) */
    for (mcache *c = all_caches; c; c = c->next, ncaches++) flush_page_caches(c);
    mheap_fork_reclaim(ncaches);
    fork_balance_stats();
}

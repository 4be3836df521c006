/*
 * mspan.c: objects inside a span. See mspan.h for the record and its rules.
 *
 * Go counterpart: the allocation-bitmap half of mbitmap.go (nextFreeIndex,
 * refillAllocCache) and sweep (mgcsweep.go), which here becomes "absorb":
 * the owner folds remote-free bits into the allocation bits.
 *
 * Allocation order inside a span is Go's: the owner moves a window of 64
 * objects forward through the span (address order); objects freed behind
 * the window are reused after the window reaches the end and the span is
 * rescanned from the start. A rescan is what Go's sweep is to a span: it
 * absorbs the remote frees first. A span freshly carved from the heap is
 * not rescanned before its first pass ends, so while needzero says so its
 * objects are known to be zero; every rescan that finds objects sets it.
 *
 * Locking: everything here is owner-only except span_free_remote, which
 * any thread calls (atomics only, plus the mcentral lock for the rare
 * transitions of unowned spans).
 */
#include "mspan.h"

#include <errno.h>

#include "arena.h"
#include "mcache.h"
#include "mcentral.h"
#include "options.h"
#include "print.h"
#include "secure.h"

mspan emptyspan; /* owner NULL, nelems 0 */

void span_set_owner(mspan *s, mcache *c) {
    for (uintptr_t i = 0; i < s->npages; i++) {
        struct free_entry *e = free_entry_of(s->base + i * PAGE_SIZE);
        if (c) {
            e->slot = cache_class_of(c, s->spanclass);
            e->base = (uint32_t)s->base;
            e->mult = free_index_mult(s->div_inv, s->div_shift);
            e->fast_fresh = (uint32_t)s->fast_fresh;
            e->spanclass = s->spanclass;
        }
        atomic_store_explicit(&e->owner, c ? c->owner_id : 0, memory_order_relaxed);
    }
    atomic_store_explicit(&s->owner, c, memory_order_relaxed);
}


/* span_exact_index's constants: elemsize = odd * 2^shift, and the inverse
 * of odd modulo 2^64 (Newton's iteration: an odd number is its own inverse
 * modulo 8, and each step doubles the correct low bits). */
static void set_exact_division(mspan *s) {
    unsigned shift = (unsigned)__builtin_ctzll(s->elemsize);
    uint64_t odd = s->elemsize >> shift, inv = odd;
    for (int i = 0; i < 5; i++) inv *= 2 - odd * inv;
    s->div_inv = inv;
    s->div_shift = (uint8_t)shift;
}

void span_init_small(mspan *s, uint8_t spanclass, uintptr_t base, uintptr_t npages, bool needzero) {
    unsigned cls = spanclass_sizeclass(spanclass);
    s->elemsize = class_to_size[cls];
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    s->base = base;
    s->div_mul = class_to_divmagic[cls];
    set_exact_division(s);
    s->nelems = class_to_nelems[cls];
    s->countdown = UINT32_MAX;
    __atomic_store_n(&s->alloc_count, 0, __ATOMIC_RELAXED);
    s->npages = npages;
    s->limit = base + (uintptr_t)s->nelems * s->elemsize;
    s->next = s->prev = NULL;
    atomic_store_explicit(&s->notify_next, NULL, memory_order_relaxed);
    s->spanclass = spanclass;
    s->needzero = needzero;
    s->nwords = (uint8_t)((s->nelems + 63) / 64);
    s->place = PLACE_NONE;
    s->fresh = 0;
    s->fast_fresh = 0;
    for (unsigned w = 0; w < s->nwords; w++) {
        span_set_alloc_word(s, w, tail_bits(s->nelems, w));
        atomic_store_explicit(&s->bits[2 * w + 1], 0, memory_order_relaxed);
    }
    uint64_t old = atomic_load_explicit(&s->free_state, memory_order_relaxed);
    atomic_store_explicit(&s->free_state, fs_new_epoch(old, SPAN_DEAD, spanclass), memory_order_release);
}

void span_init_large(mspan *s, uint8_t spanclass, uintptr_t base, uintptr_t npages, bool needzero) {
    s->elemsize = npages * PAGE_SIZE;
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    s->base = base;
    s->div_mul = 0;
    s->div_inv = 0;
    s->div_shift = 0;
    s->fast_fresh = 0;
    s->nelems = 1;
    s->countdown = UINT32_MAX;
    __atomic_store_n(&s->alloc_count, 1, __ATOMIC_RELAXED);
    s->npages = npages;
    s->limit = base + npages * PAGE_SIZE;
    s->next = s->prev = NULL;
    s->spanclass = spanclass;
    s->needzero = needzero;
    s->nwords = 0;
    s->place = PLACE_NONE;
    uint64_t old = atomic_load_explicit(&s->free_state, memory_order_relaxed);
    atomic_store_explicit(&s->free_state, fs_new_epoch(old, SPAN_LARGE, spanclass), memory_order_release);
}

uintptr_t span_object_at(mspan *s, unsigned idx) { return s->base + (uintptr_t)idx * s->elemsize; }

/* Make word w of s the allocation window of cache slot k (s becomes k's
 * current span). Every free slot of the word now belongs to the window, so
 * its allocation word becomes all ones; the slots are counted as allocated
 * now and uncounted if they are put back (span_uncache_window). */
/* First use of the objects up to the end of word w: tag them (they are all
 * free), and in secure mode poison them (the span is then no longer known
 * to be zero). */
static void tag_fresh(mspan *s, unsigned w) {
    unsigned end = (w + 1) * 64 < s->nelems ? (w + 1) * 64 : s->nelems;
    if (end <= s->fresh) return;
    if (s->elemsize >= 16) {
        for (unsigned i = s->fresh; i < end; i++) {
            uintptr_t p = s->base + (uintptr_t)i * s->elemsize;
            ((uintptr_t *)p)[1] = free_tag(p);
        }
        if (unlikely(options.secure)) {
            for (unsigned i = s->fresh; i < end; i++) secure_poison(s, s->base + (uintptr_t)i * s->elemsize);
            s->needzero = 1;
        }
    }
    s->fresh = (uint16_t)end;
    if (reuse_limit_of(s->spanclass)) {
        s->fast_fresh = end;
        for (uintptr_t i = 0; i < s->npages; i++) free_entry_of(s->base + i * PAGE_SIZE)->fast_fresh = end;
    }
}

static void load_window(struct cache_class *k, mspan *s, unsigned w, uint64_t free) {
    tag_fresh(s, w);
    span_set_alloc_word(s, w, ~(uint64_t)0);
    k->alloc = s;
    __atomic_store_n(&k->window, free, __ATOMIC_RELAXED); /* read by mcache_sum_stats */
    k->window_base = s->base + (uintptr_t)w * 64 * s->elemsize;
    k->window_word = (uint16_t)w;
    stat_add(&k->nmalloc, popcount64(free));
}

static inline unsigned window_word(const struct cache_class *k, const mspan *s) {
    (void)s;
    return k->window_word;
}

/* Absorb the remote frees of s into its allocation bits (owner only).
 * Returns the number of objects freed by them. A remote free of an object
 * that is already free here is a double free: reported, and ignored. */
uint32_t span_absorb_remote(mspan *s, unsigned window_w, uint64_t window) {
    uint32_t good = 0, all = 0;
    for (unsigned w = 0; w < s->nwords; w++) {
        if (!span_remote_word(s, w)) continue;
        uint64_t r = atomic_exchange_explicit(&s->bits[2 * w + 1], 0, memory_order_acq_rel);
        uint64_t a = span_alloc_word(s, w);
        uint64_t in_use = a & ~(w == window_w ? window : 0);
        uint64_t bad = r & ~in_use;
        all += popcount64(r);
        if (unlikely(bad)) {
            do {
                unsigned b = (unsigned)__builtin_ctzll(bad);
                report_misuse("free", (void *)span_object_at(s, w * 64 + b), MISUSE_DOUBLE_FREE_LATE);
                bad &= bad - 1;
            } while (bad);
            r &= in_use;
        }
        span_set_alloc_word(s, w, a & ~r);
        good += popcount64(r);
    }
    if (all) atomic_fetch_sub_explicit(&s->free_state, all, memory_order_acq_rel);
    return good;
}

/* The window of k's current span s is used up: find the next word with free
 * objects; at the end of the span, rescan it if anything was freed during
 * this pass (the current span's countdown only moves on frees). */
bool span_next_window(struct cache_class *k, mspan *s) {
    if (unlikely(options.secure)) return span_random_window(k, s);
    for (unsigned w = window_word(k, s) + 1u; w < s->nwords; w++) {
        uint64_t free = ~span_alloc_word(s, w);
        if (free) {
            load_window(k, s, w, free);
            return true;
        }
    }
    if (s->countdown == UINT32_MAX && fs_count(span_free_state(s)) == 0) return false;
    return span_rescan(k, s);
}

/* Start a new pass over s from its first object, after absorbing remote
 * frees (Go's sweep, applied to one span by its owner); s becomes k's
 * current span if it has a free object. Objects found now may have been
 * used before. */
bool span_rescan(struct cache_class *k, mspan *s) {
    if (unlikely(options.secure)) return span_random_window(k, s);
    span_uncache_window(k, s);
    if (fs_count(span_free_state(s)) != 0) span_absorb_remote(s, 0, 0);
    s->countdown = UINT32_MAX;
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t free = ~span_alloc_word(s, w);
        if (free) {
            s->needzero = 1;
            load_window(k, s, w, free);
            return true;
        }
    }
    return false;
}

/* First window of a span fresh from the heap (nothing used yet). */
void span_first_window(struct cache_class *k, mspan *s) {
    if (unlikely(options.secure)) {
        span_random_window(k, s);
        return;
    }
    load_window(k, s, 0, ~span_alloc_word(s, 0));
}

/* Secure mode (secure.c): a window of one free object of s chosen at random
 * among all of them, after absorbing remote frees; its poison is checked
 * first (a write after free is reported). False if s has no free object. */
bool span_random_window(struct cache_class *k, mspan *s) {
    span_uncache_window(k, s);
    if (fs_count(span_free_state(s)) != 0) span_absorb_remote(s, 0, 0);
    s->countdown = UINT32_MAX;
    unsigned nfree = 0;
    for (unsigned w = 0; w < s->nwords; w++) nfree += popcount64(~span_alloc_word(s, w));
    if (!nfree) return false;
    unsigned r = (unsigned)(secure_random() % nfree), w = 0;
    uint64_t free = ~span_alloc_word(s, 0);
    while (r >= popcount64(free)) {
        r -= popcount64(free);
        free = ~span_alloc_word(s, ++w);
    }
    while (r--) free &= free - 1; /* drop the r lowest free bits */
    uint64_t bit = free & -free;
    unsigned idx = w * 64 + (unsigned)__builtin_ctzll(bit);
    uintptr_t p = s->base + (uintptr_t)idx * s->elemsize;
    if (idx < s->fresh && s->elemsize >= 16) secure_check_poison(s, p);
    tag_fresh(s, w);
    span_set_alloc_word(s, w, span_alloc_word(s, w) | bit);
    k->alloc = s;
    __atomic_store_n(&k->window, bit, __ATOMIC_RELAXED);
    k->window_base = s->base + (uintptr_t)w * 64 * s->elemsize;
    k->window_word = (uint16_t)w;
    stat_add(&k->nmalloc, 1);
    return true;
}

/* If s is k's current span, put the unused slots of its window back into
 * the allocation bits and detach the window (s stays k->alloc until the
 * caller replaces it). */
void span_uncache_window(struct cache_class *k, mspan *s) {
    if (k->alloc != s || k->window_word == NO_WINDOW) return;
    unsigned w = window_word(k, s);
    span_set_alloc_word(s, w, span_alloc_word(s, w) & ~k->window);
    uint64_t n = popcount64(k->window);
    __atomic_store_n(&k->nmalloc, __atomic_load_n(&k->nmalloc, __ATOMIC_RELAXED) - n, __ATOMIC_RELAXED);
    __atomic_store_n(&k->window, 0, __ATOMIC_RELAXED);
    k->window_word = NO_WINDOW;
}

/* Objects in use per the allocation bits (window written back). */
uint32_t span_live_objects(mspan *s) {
    uint32_t n = 0;
    for (unsigned w = 0; w < s->nwords; w++) n += popcount64(span_alloc_word(s, w) & ~tail_bits(s->nelems, w));
    return n;
}

/* mcentral_remote_transition for a free, which keeps errno (the heap may
 * call the OS); out of line, so the common path saves no registers. */
static NOINLINE void remote_transition(mspan *s, uint64_t seen) {
    int saved = errno;
    mcentral_remote_transition(s, seen);
    errno = saved;
}

void span_count_remote(mspan *s, uint32_t n) {
    /* Count the frees, and in the same step flag an owned span for its
     * owner's notify stack if nobody has: once NOTIFY is set the owner
     * cannot give the span away, so it cannot die and be reused while we
     * push it. (A separate flagging step after the count could land on a
     * span record reused in between.) */
    uint64_t v = atomic_load_explicit(&s->free_state, memory_order_relaxed), nv;
    do {
        nv = v + n;
        if (fs_state(v) == SPAN_CACHED && !(v & FS_NOTIFY)) nv |= FS_NOTIFY;
    } while (!atomic_compare_exchange_weak_explicit(&s->free_state, &v, nv, memory_order_acq_rel,
                                                    memory_order_relaxed));
    unsigned st = fs_state(nv);
    if (st == SPAN_CACHED) {
        if (!(v & FS_NOTIFY)) mcentral_notify_owner(s);
        return;
    }
    if (st == SPAN_FULL ||
        (st == SPAN_PARTIAL && fs_count(nv) == (int32_t)__atomic_load_n(&s->alloc_count, __ATOMIC_RELAXED)))
        remote_transition(s, nv);
}

/* Free object idx of s from a thread that does not own s (op names the
 * caller's operation in reports). Caught here: an object whose allocation
 * bit is clear, one that is free anywhere else (its free tag: on its
 * owner's reuse list, in the owner's allocation window, freed by the owner
 * into the bitmap), one another thread freed already (its remote bit). If
 * the program overwrote a free object's tag, a window slot's remote bit is
 * set anyway, and span_absorb_remote reports it when the owner collects.
 *
 * The remote bit is set at once (double frees are caught at once); the
 * free_state count, which tells the owner or mcentral, is added later, a
 * batch per span: see mcache_remote_pending. */
static ALWAYS_INLINE void free_remote(mspan *s, uintptr_t p, uintptr_t idx, mcache *c, const char *op, bool secure) {
    unsigned w = (unsigned)(idx >> 6);
    uint64_t bit = (uint64_t)1 << (idx & 63);
    if (unlikely(!(span_alloc_word(s, w) & bit))) {
        report_misuse(op, (void *)p, MISUSE_DOUBLE_FREE);
        return;
    }
    if (unlikely(s->elemsize >= 16 && reuse_tagged((void *)p))) {
        report_misuse(op, (void *)p, MISUSE_DOUBLE_FREE);
        return;
    }
    if (secure && s->elemsize >= 16) secure_poison(s, p);
    if (s->elemsize >= 16) ((uintptr_t *)p)[1] = free_tag(p); /* free now: tagged (mspan.h) */
    uint64_t old = atomic_fetch_or_explicit(&s->bits[2 * w + 1], bit, memory_order_acq_rel);
    if (unlikely(old & bit)) {
        report_misuse(op, (void *)p, MISUSE_DOUBLE_FREE_REMOTE);
        return;
    }
    count_free(c, s->spanclass);
    struct remote_pending *r = &c->remote[s->spanclass];
    if (likely(r->span == s) && likely(r->n < r->limit)) {
        r->n++;
        return;
    }
    mcache_remote_pending(c, s);
}

/* Secure mode's copy, out of line: the call to secure_poison in the middle
 * of the common path made it save six registers on every remote free. */
static NOINLINE void free_remote_secure(mspan *s, uintptr_t p, uintptr_t idx, mcache *c, const char *op) {
    free_remote(s, p, idx, c, op, true);
}

void span_free_remote(mspan *s, uintptr_t p, uintptr_t idx, mcache *c, const char *op) {
    if (unlikely(options.secure)) {
        free_remote_secure(s, p, idx, c, op);
        return;
    }
    free_remote(s, p, idx, c, op, false);
}

void span_check(mspan *s) {
    unsigned st = fs_state(span_free_state(s));
    if (st == SPAN_LARGE || st == SPAN_DEAD) return;
    if (s->nwords != (s->nelems + 63) / 64) throw("span %p: nwords %u for %u objects", (void *)s->base, s->nwords, s->nelems);
    if (s->limit != s->base + (uintptr_t)s->nelems * s->elemsize) throw("span %p: bad limit", (void *)s->base);
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t t = tail_bits(s->nelems, w);
        if ((span_alloc_word(s, w) & t) != t) throw("span %p: tail bits of word %u cleared", (void *)s->base, w);
        if (span_remote_word(s, w) & t) throw("span %p: remote free past the last object", (void *)s->base);
    }
}

/*
 * mcentral.c: one pool of unowned spans per span class.
 *
 * Owns: the partial list of each span class (unowned spans with free
 * objects), adopting spans into a thread's cache, taking spans back from
 * owners, and the state transitions of unowned spans driven by remote frees.
 * Go counterpart: mcentral.go (cacheSpan, uncacheSpan, grow).
 *
 * Departures from Go, and why:
 *  - Spans stay owned by the thread that allocates from them, current or
 *    not (mcache.c), so that thread frees into them without atomics; a span
 *    comes back here only when its owner exits, or when it is emptied with
 *    remote frees still in flight. mcentral is then the exchange through
 *    which those spans find a new owner, and the door to the page heap.
 *  - Go's lock-free span sets are replaced by a lock and a doubly linked
 *    list per class: a span must leave the partial list the moment its last
 *    object dies (so its pages go back to the heap), which a set that only
 *    pops from its head cannot do. The lock is taken per span transition,
 *    never per object.
 *
 * Unowned span life (all under the class lock, decided by CAS on
 * free_state so that racing remote frees are counted exactly once):
 *   FULL    --first remote free-->        PARTIAL (pushed on the list)
 *   PARTIAL --remote free of last object--> DEAD  (unlinked, pages freed)
 *   PARTIAL --adopted by a refill-->        CACHED (owned, new generation)
 * The remote free whose count increment makes count == alloc_count is the
 * last one: every earlier free has set its bit and counted itself.
 *
 * Locking: mc->lock guards the list and every transition of an unowned span
 * of the class; it is taken before the heap lock, never with another
 * mcentral lock.
 */
#include "mcentral.h"

#include <sched.h>

#include "check.h"
#include "mcache.h"
#include "mheap.h"
#include "mspan.h"
#include "print.h"

void mcentral_init(mcentral *mc, uint8_t spanclass) {
    mutex_reinit(&mc->lock);
    mc->spanclass = spanclass;
    mc->partial = NULL;
    mc->npartial = 0;
    mc->nfull = 0;
}

/* mc->partial is written under mc->lock and read without it by
 * mcentral_cache_span as a hint (is there anything to adopt?): relaxed
 * atomic stores, so that read is not a data race. */
static void set_partial_head(mcentral *mc, mspan *s) { __atomic_store_n(&mc->partial, s, __ATOMIC_RELAXED); }

static void list_push(mcentral *mc, mspan *s) {
    s->prev = NULL;
    s->next = mc->partial;
    if (mc->partial) mc->partial->prev = s;
    set_partial_head(mc, s);
    mc->npartial++;
    s->place = PLACE_CENTRAL;
}

static void list_remove(mcentral *mc, mspan *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        set_partial_head(mc, s->next);
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    mc->npartial--;
    s->place = PLACE_NONE;
}

/* Replace the state of v (keeping count and class) by CAS; v is updated to
 * the current value on failure. new_gen bumps the generation. */
static bool cas_state(mspan *s, uint64_t *v, unsigned st, bool new_gen) {
    uint64_t nv = fs_with_state(*v, st) & ~FS_NOTIFY;
    if (new_gen) nv += FS_GEN_ONE;
    return atomic_compare_exchange_strong_explicit(&s->free_state, v, nv, memory_order_acq_rel,
                                                   memory_order_acquire);
}

mspan *mcentral_cache_span(uint8_t spc, mcache *c) {
    mcentral *mc = &mheap_.central[spc];
    while (__atomic_load_n(&mc->partial, __ATOMIC_RELAXED)) {
        lock(&mc->lock);
        mspan *s = mc->partial;
        if (!s) {
            unlock(&mc->lock);
            break;
        }
        if (DEBUG_CHECKS) {
            if (fs_state(span_free_state(s)) != SPAN_PARTIAL || s->place != PLACE_CENTRAL || span_owner(s))
                throw("mcentral %u: adopting span %p that is not unowned and partial", spc, (void *)s->base);
            span_check_unowned(s);
        }
        list_remove(mc, s);
        /* The owner first: a remote free that sees CACHED reads it to push
         * the span on the owner's notify stack (the CAS publishes it). */
        span_set_owner(s, c);
        uint64_t v = span_free_state(s);
        while (!cas_state(s, &v, SPAN_CACHED, true)) {
        }
        unlock(&mc->lock);
        if (span_rescan(cache_class_of(c, spc), s)) return s;
        /* Every object is still in use (its free was a double free that
         * the absorb rejected): keep it as an owned full span. */
        mcache_keep_full(c, s);
    }
    uintptr_t npages = class_to_npages[spanclass_sizeclass(spc)];
    mspan *s = mheap_alloc_span(npages, spc, c, 1);
    if (!s) return NULL;
    span_set_owner(s, c);
    uint64_t v = span_free_state(s);
    atomic_store_explicit(&s->free_state, fs_with_state(v, SPAN_CACHED), memory_order_release);
    span_first_window(cache_class_of(c, spc), s);
    return s;
}

void mcentral_release(mspan *s, mcache *c) {
    mcentral *mc = &mheap_.central[s->spanclass];
    if (DEBUG_CHECKS) {
        if (span_owner(s) != c || fs_state(span_free_state(s)) != SPAN_CACHED || s->place != PLACE_NONE)
            throw("mcentral_release: span %p is not owned by %p and off its lists (owner %p, place %u)",
                  (void *)s->base, (void *)c, (void *)span_owner(s), s->place);
        span_check(s);
    }
    for (;;) {
        uint64_t v = span_free_state(s);
        if (v & FS_NOTIFY) {
            /* A remote thread is telling us about frees: take the span off
             * our notify stack before giving it away. */
            mcache_drain_notify(c);
            sched_yield();
            continue;
        }
        span_absorb_remote(s, 0, 0); /* s has no window any more */
        uint32_t live = span_live_objects(s);
        lock(&mc->lock);
        v = span_free_state(s);
        if (v & FS_NOTIFY) {
            unlock(&mc->lock);
            continue;
        }
        __atomic_store_n(&s->alloc_count, live, __ATOMIC_RELAXED);
        int32_t cnt = fs_count(v);
        unsigned st;
        if (cnt == (int32_t)live)
            st = SPAN_DEAD; /* nothing lives (and no remote free in flight) */
        else if (live == s->nelems && cnt <= 0)
            st = SPAN_FULL;
        else
            st = SPAN_PARTIAL;
        if (!cas_state(s, &v, st, true)) {
            unlock(&mc->lock);
            continue; /* a remote free moved the count: decide again */
        }
        span_set_owner(s, NULL);
        s->place = PLACE_NONE;
        if (st == SPAN_PARTIAL)
            list_push(mc, s);
        else if (st == SPAN_FULL)
            mc->nfull++;
        if (DEBUG_CHECKS && st != SPAN_DEAD) span_check_unowned(s);
        unlock(&mc->lock);
        if (st == SPAN_DEAD) mheap_release_span(s, c);
        return;
    }
}

void mcentral_remote_transition(mspan *s, uint64_t seen) {
    mcentral *mc = &mheap_.central[fs_class(seen)];
    lock(&mc->lock);
    uint64_t v = span_free_state(s);
    for (;;) {
        unsigned st = fs_state(v);
        if (fs_gen(v) != fs_gen(seen) || (st != SPAN_FULL && st != SPAN_PARTIAL)) break;
        if (fs_count(v) == (int32_t)s->alloc_count) {
            /* The last object died. */
            if (!cas_state(s, &v, SPAN_DEAD, true)) continue;
            if (st == SPAN_PARTIAL)
                list_remove(mc, s);
            else
                mc->nfull--;
            unlock(&mc->lock);
            mheap_free_span(s);
            return;
        }
        if (st == SPAN_FULL && fs_count(v) > 0) {
            if (!cas_state(s, &v, SPAN_PARTIAL, false)) continue;
            mc->nfull--;
            list_push(mc, s);
            if (DEBUG_CHECKS) span_check_unowned(s);
        }
        break;
    }
    unlock(&mc->lock);
}

void mcentral_notify_owner(mspan *s) {
    /* The caller set NOTIFY on the owned span: the owner cannot give the
     * span up until it drains us, so the owner read here stays valid. */
    mcache *o = span_owner(s);
    mspan *head = atomic_load_explicit(&o->notify, memory_order_relaxed);
    do {
        atomic_store_explicit(&s->notify_next, head, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&o->notify, &head, s, memory_order_release,
                                                    memory_order_relaxed));
}

/* ---- The child after fork ---------------------------------------------------
 *
 * Only the forking thread survives a fork, and every lock-free operation
 * other threads had under way is frozen wherever it was: a remote free
 * that set its bit but did not count it (or did not push the span on its
 * owner's notify stack, or did not make the last transition), an owner
 * between two steps of moving a span between its lists, or between
 * writing a span's free-map entries and its owner field (which
 * arena_fork_clear_free_map undoes). mcache_fork_child
 * therefore does not trust the dead threads' caches: it walks every span
 * (mheap_for_each_span) and calls these to make each one consistent. */

/* Set the remote-free count of s to the remote bits it has. */
static uint32_t recount_remote(mspan *s) {
    uint32_t n = 0;
    for (unsigned w = 0; w < s->nwords; w++) n += (uint32_t)__builtin_popcountll(span_remote_word(s, w));
    uint64_t v = span_free_state(s);
    v = (v & ~(FS_COUNT_MASK | FS_NOTIFY)) | (FS_COUNT_BIAS + n);
    atomic_store_explicit(&s->free_state, v, memory_order_relaxed);
    return n;
}

uint32_t mcentral_fork_recount(mspan *s) { return recount_remote(s); }

void mcentral_fork_orphan(mspan *s) {
    mcentral *mc = &mheap_.central[s->spanclass];
    /* absorb every remote free, counted or not */
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t r = atomic_exchange_explicit(&s->bits[2 * w + 1], 0, memory_order_relaxed);
        span_set_alloc_word(s, w, span_alloc_word(s, w) & ~r);
    }
    uint32_t live = span_live_objects(s);
    unsigned st = live == 0 ? SPAN_DEAD : live == s->nelems ? SPAN_FULL : SPAN_PARTIAL;
    __atomic_store_n(&s->alloc_count, live, __ATOMIC_RELAXED);
    span_set_owner(s, NULL);
    atomic_store_explicit(&s->notify_next, NULL, memory_order_relaxed);
    s->next = s->prev = NULL;
    s->place = PLACE_NONE;
    s->countdown = UINT32_MAX;
    atomic_store_explicit(&s->free_state, fs_new_epoch(span_free_state(s), st, s->spanclass),
                          memory_order_relaxed);
    if (st == SPAN_PARTIAL)
        list_push(mc, s);
    else if (st == SPAN_FULL)
        mc->nfull++;
    else
        mheap_free_span(s);
}

void mcentral_fork_unowned(mspan *s) {
    mcentral *mc = &mheap_.central[s->spanclass];
    unsigned st = fs_state(span_free_state(s));
    uint32_t n = recount_remote(s);
    if (n >= __atomic_load_n(&s->alloc_count, __ATOMIC_RELAXED)) {
        /* its last remote free was under way */
        if (st == SPAN_PARTIAL)
            list_remove(mc, s);
        else
            mc->nfull--;
        uint64_t v = span_free_state(s);
        atomic_store_explicit(&s->free_state, fs_with_state(v, SPAN_DEAD) + FS_GEN_ONE, memory_order_relaxed);
        mheap_free_span(s);
    } else if (st == SPAN_FULL && n > 0) {
        /* its first remote free was under way */
        uint64_t v = span_free_state(s);
        atomic_store_explicit(&s->free_state, fs_with_state(v, SPAN_PARTIAL), memory_order_relaxed);
        mc->nfull--;
        list_push(mc, s);
    }
}


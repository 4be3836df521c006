/*
 * mheap.c: the page heap. Spans of N pages, large objects, heap growth.
 *
 * Owns: allocating and freeing spans (runs of pages) through the page
 * allocator, growing the heap from reserved arenas, the span records, the
 * mcentral array, and the heap-level statistics.
 * Go counterpart: mheap.go (allocSpan, freeSpan, grow, initSpan).
 *
 * Paths:
 *  - A small span (< 16 pages) is carved lock-free from the calling
 *    thread's page cache when it can be; the cache is refilled 64 pages at a
 *    time under the heap lock (Go: pageCache, allocToCache).
 *  - Otherwise the heap lock is taken and the page allocator searched; on
 *    failure the heap grows by whole 4 MiB chunks from the current arena
 *    reservation, reserving new arenas as needed (Go: mheap.grow).
 *  - New memory arrives Prepared (counted as released); pages that were
 *    scavenged are made Ready again when they are handed out (sys_used),
 *    under the lock they were taken with (used_locked: so at a fork the OS
 *    books always agree with the page allocator).
 *  - needzero: a span needs zeroing unless all of its pages lie above the
 *    arena's zeroed-base mark or were all scavenged (MADV_DONTNEED pages
 *    read back as zero).
 *
 * Span records come from fixallocs, one per bitmap size (a span of 8-byte
 * objects needs 16 words per bitmap, a 4 KiB-object span one word). They
 * are never zeroed on reuse: the free_state generation must survive so that
 * threads holding an old snapshot notice the record moved on.
 *
 * Out of memory: every step that asks the OS for something either succeeds
 * or leaves the heap exactly as it was, and the allocation returns NULL with
 * errno ENOMEM:
 *  - growth maps the page allocator's summary memory, then maps the heap
 *    range, then adds it (which cannot fail any more); a refused step
 *    keeps only harmless extras (zeroed summary pages, the reservation);
 *  - a reservation that cannot be used (the rest of the old region could
 *    not be added first) is given back to arena.c;
 *  - pages whose sys_used is refused (harddecommit: mprotect) go back with
 *    pages_unalloc, still scavenged, so the next user makes them Ready;
 *  - before failing, a small request takes back the pages every thread
 *    holds in its page cache, the last free pages there may be;
 *  - with harddecommit, a failed span allocation releases free pages and
 *    tries once more: released pages are PROT_NONE and so no longer count
 *    against strict overcommit or RLIMIT_DATA (without harddecommit they
 *    stay charged, as in Go, and only their reuse is possible).
 * The only fatal errors left are broken invariants.
 *
 * Locking: the heap lock guards the page allocator, growth and cur_arena;
 * it is never taken on the malloc or free fast paths. Callers may hold an
 * mcentral lock; a thread's page cache is used under its page-cache lock,
 * taken before the heap lock (lock.h). Record fixallocs have their own
 * leaf locks. After pages are freed the scavenger is poked (scavenge.c).
 * sys_used runs under the heap or page-cache lock: free of system calls,
 * except under GOMALLOC_HARDDECOMMIT (an mprotect), a debugging mode.
 */
#include "mheap.h"

#include <errno.h>
#include <string.h>

#include "arena.h"
#include "check.h"
#include "mcache.h"
#include "mspan.h"
#include "options.h"
#include "os.h"
#include "print.h"
#include "scavenge.h"

struct mheap mheap_;

const uint8_t span_record_words[SPAN_RECORD_KINDS] = {0, 1, 2, 4, 8, 16};

unsigned span_record_kind(unsigned nwords) {
    unsigned k = 0;
    while (span_record_words[k] < nwords) k++;
    return k;
}

int mheap_init(void) {
    mutex_reinit(&mheap_.lock);
    if (pages_init(&mheap_.pages) != 0) return -1;
    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++)
        fixalloc_init(&mheap_.spanalloc[k],
                      round_up(offsetof(mspan, bits) + 2 * sizeof(uint64_t) * span_record_words[k], CACHE_LINE), 0,
                      &metastats.mspan);
    fixalloc_init(&mheap_.cachealloc, sizeof(mcache), 1, &metastats.mcache);
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++) mcentral_init(&mheap_.central[i], (uint8_t)i);
    return 0;
}

/* heap_sys is read without the heap lock by the scavenger's goal
 * (scavenge.c): relaxed atomic stores, always under the heap lock. */
static void add_heap_sys(uintptr_t n) { __atomic_store_n(&mheap_.heap_sys, mheap_.heap_sys + n, __ATOMIC_RELAXED); }

/* A huge page: the region that pagealloc.c's scavenging rules and
 * MADV_COLLAPSE work in. */
#define HUGE_REGION_BYTES ((uintptr_t)2 << 20)

/* At most this many bytes of resident regions are collapsed into huge
 * pages when the heap passes GOMALLOC_HUGEPAGES's threshold (heap_mark_earlier):
 * the copy runs once, under the heap lock. */
#define COLLAPSE_MAX_BYTES ((uintptr_t)16 << 20)

/* Mark the chunks of [v, v+n) for huge pages; the scavenger then releases
 * only whole free regions of them (pagealloc.c, region_releasable). */
static void mark_huge(uintptr_t v, uintptr_t n) {
    sys_hugepage((void *)v, n);
    for (uintptr_t ci = v >> CHUNK_SHIFT; ci < (v + n) >> CHUNK_SHIFT; ci++)
        arena_of_chunk(ci)->huge |= (uint16_t)(1u << (ci % CHUNKS_PER_ARENA));
}

/* The heap just passed the huge-page threshold: mark the chunks it had
 * before too (all but [v, v+n)), which hold its oldest and often hottest
 * objects, and collapse their resident regions into huge pages at once
 * (khugepaged would take its time, some seconds per 16 MiB by default).
 * A region with pages never used or released is only marked (heap lock
 * held). */
static void heap_mark_earlier(uintptr_t v, uintptr_t n) {
    uintptr_t budget = phys_huge_page_size == HUGE_REGION_BYTES ? COLLAPSE_MAX_BYTES : 0;
    for (heap_arena *ha = atomic_load_explicit(&all_arenas, memory_order_relaxed); ha; ha = ha->next) {
        if (ha->palloc != &mheap_.pages) continue;
        for (unsigned i = 0; i < CHUNKS_PER_ARENA; i++) {
            uintptr_t c = ha->base + (uintptr_t)i * CHUNK_BYTES;
            if (!(ha->grown >> i & 1) || ha->huge >> i & 1 || (c >= v && c < v + n)) continue;
            mark_huge(c, CHUNK_BYTES);
            for (uintptr_t r = c; r < c + CHUNK_BYTES && budget; r += HUGE_REGION_BYTES)
                if (pages_region_resident(&mheap_.pages, r)) {
                    sys_collapse((void *)r, HUGE_REGION_BYTES);
                    budget -= HUGE_REGION_BYTES;
                }
        }
    }
}

/* Give [v, v+n) of the reservation to the page allocator, all or nothing
 * (heap lock held). */
static bool heap_add(uintptr_t v, uintptr_t n) {
    if (pages_grow_prepare(&mheap_.pages, v, n) != 0) return false;
    if (sys_map((void *)v, n, &mheap_.heap_sys_stat) != 0) return false;
    if (pages_grow(&mheap_.pages, v, n) != 0) throw("pages_grow failed after its summaries were mapped");
    /* GOMALLOC_HUGEPAGES (auto: from 8 MiB): memory that takes the heap
     * past the threshold asks for huge pages; a small heap stays in 4 KiB
     * pages, where whole 2 MiB pages would multiply its RSS. Not where the
     * system gives none (os_linux.c). */
    if (sys_hugepages_usable && mheap_.heap_sys + n > options.hugepages_from) {
        if (mheap_.heap_sys && mheap_.heap_sys <= options.hugepages_from) heap_mark_earlier(v, n);
        mark_huge(v, n);
    }
    add_heap_sys(n);
    return true;
}

/* Grow the heap by at least npages (heap lock held). */
static bool mheap_grow(uintptr_t npages) {
    uintptr_t ask = round_up(npages, CHUNK_PAGES) * PAGE_SIZE;
    if (ask / PAGE_SIZE < npages) return false; /* wrapped: no such address space */
    if (mheap_.cur_arena_end - mheap_.cur_arena_base < ask) {
        uintptr_t got = 0;
        uintptr_t base = arena_reserve(ask, &got);
        if (!base) return false;
        if (base == mheap_.cur_arena_end) {
            mheap_.cur_arena_end += got;
        } else {
            /* Not contiguous: hand the rest of the old region to the page
             * allocator first, so no reserved space is lost; if that is
             * refused, the new reservation goes back too. */
            uintptr_t left = mheap_.cur_arena_end - mheap_.cur_arena_base;
            if (left && !heap_add(mheap_.cur_arena_base, left)) {
                arena_unreserve(base, got);
                return false;
            }
            mheap_.cur_arena_base = base;
            mheap_.cur_arena_end = base + got;
        }
    }
    uintptr_t v = mheap_.cur_arena_base;
    if (!heap_add(v, ask)) return false;
    mheap_.cur_arena_base += ask;
    scavenge_heap_grew(mheap_.heap_sys);
    if (options.verbose)
        print_err("gomalloc: heap grew by %zu KiB at %p (heap %zu KiB)\n", (size_t)(ask >> 10), (void *)v,
                  (size_t)(mheap_.heap_sys >> 10));
    return true;
}

static uintptr_t alloc_pages_locked(uintptr_t npages, uintptr_t align_pages, uintptr_t *scav, bool may_grow) {
    uintptr_t base = pages_alloc_aligned(&mheap_.pages, npages, align_pages, scav);
    if (!base && may_grow && mheap_grow(npages + (align_pages > 1 ? align_pages - 1 : 0)))
        base = pages_alloc_aligned(&mheap_.pages, npages, align_pages, scav);
    return base;
}

/* Pages just taken from the page allocator, `scav` of them scavenged, are
 * made Ready while the heap lock that took them is still held: the fork
 * handlers hold it, so a child never sees pages taken whose bytes the OS
 * books still count Prepared (the child frees such orphans as Ready, and
 * HeapReleased would stay below Prepared for good). Refused: the pages go
 * back as they were, still scavenged. */
static bool used_locked(uintptr_t base, uintptr_t npages, uintptr_t scav) {
    if (!scav || sys_used((void *)base, npages * PAGE_SIZE, scav * PAGE_SIZE) == 0) return true;
    pages_unalloc(&mheap_.pages, base, npages);
    return false;
}

static mspan *alloc_span(uintptr_t npages, uint8_t spanclass, mcache *c, uintptr_t align_pages) {
    unsigned cls = spanclass_sizeclass(spanclass);
    unsigned nwords = cls ? (class_to_nelems[cls] + 63u) / 64u : 0;
    unsigned kind = span_record_kind(nwords);
    mspan *s = fixalloc_alloc(&mheap_.spanalloc[kind]);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->record_kind = (uint8_t)kind;
    uintptr_t base = 0, scav = 0;
    uint64_t cache_scav = 0;
    if (options.memlimit_hard && !scavenge_check_limit(npages * PAGE_SIZE)) {
        fixalloc_free(&mheap_.spanalloc[kind], s);
        errno = ENOMEM;
        return NULL;
    }
    bool grow_failed = false, used_failed = false;
    if (c && npages < PAGE_CACHE_MAX_ALLOC && align_pages <= 1) {
        lock(&c->pcache_lock);
        if (pagecache_empty(&c->pcache)) {
            lock(&mheap_.lock);
            c->pcache = pages_alloc_to_cache(&mheap_.pages);
            if (pagecache_empty(&c->pcache)) {
                if (mheap_grow(PAGE_CACHE_PAGES))
                    c->pcache = pages_alloc_to_cache(&mheap_.pages);
                else
                    grow_failed = true;
            }
            unlock(&mheap_.lock);
            atomic_fetch_add_explicit(&mheap_.pagecache_free, (uint64_t)__builtin_popcountll(c->pcache.cache),
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&mheap_.pagecache_scav, (uint64_t)__builtin_popcountll(c->pcache.scav),
                                      memory_order_relaxed);
        }
        base = pagecache_alloc(&c->pcache, npages, &cache_scav);
        if (base) {
            /* Made Ready under the page-cache lock, for the reason of
             * used_locked (the fork handlers hold this lock too). */
            scav = (uintptr_t)__builtin_popcountll(cache_scav);
            atomic_fetch_sub_explicit(&mheap_.pagecache_free, npages, memory_order_relaxed);
            atomic_fetch_sub_explicit(&mheap_.pagecache_scav, scav, memory_order_relaxed);
            if (scav && sys_used((void *)base, npages * PAGE_SIZE, scav * PAGE_SIZE) != 0) {
                lock(&mheap_.lock); /* back to the heap as they were: still scavenged */
                pages_unalloc_cached(&mheap_.pages, base, npages, cache_scav);
                unlock(&mheap_.lock);
                base = 0;
                used_failed = true;
            }
        }
        unlock(&c->pcache_lock);
    }
    if (!base && !used_failed) {
        lock(&mheap_.lock);
        base = alloc_pages_locked(npages, align_pages, &scav, !grow_failed);
        if (base && !used_locked(base, npages, scav)) base = 0, used_failed = true;
        unlock(&mheap_.lock);
    }
    if (!base && !used_failed && npages < PAGE_CACHE_MAX_ALLOC) {
        /* The heap cannot grow: the last free pages may sit in the page
         * caches of other threads. */
        mcache_flush_all_page_caches();
        lock(&mheap_.lock);
        base = pages_alloc_aligned(&mheap_.pages, npages, align_pages, &scav);
        if (base && !used_locked(base, npages, scav)) base = 0;
        unlock(&mheap_.lock);
    }
    if (!base) {
        fixalloc_free(&mheap_.spanalloc[kind], s);
        errno = ENOMEM;
        return NULL;
    }
    /* Soft limit: these pages have just become Ready (Go: allocSpan). */
    if (scav && !options.memlimit_hard) scavenge_check_limit(0);
    bool needzero = arena_needs_zero(base, npages) && scav < npages;
    if (cls)
        span_init_small(s, spanclass, base, npages, needzero);
    else
        span_init_large(s, spanclass, base, npages, needzero);
    arena_set_spans(base, npages, s);
    if (DEBUG_CHECKS) span_check_new(s);
    atomic_fetch_add_explicit(&mheap_.pages_inuse, npages, memory_order_relaxed);
    return s;
}

mspan *mheap_alloc_span(uintptr_t npages, uint8_t spanclass, mcache *c, uintptr_t align_pages) {
    mspan *s = alloc_span(npages, spanclass, c, align_pages);
    /* Refused, with harddecommit: the charge for memory (strict overcommit,
     * RLIMIT_DATA) may be held by free pages that are still Ready, which
     * releasing makes inaccessible and uncharged. Release, try once more.
     * (Without harddecommit released pages stay charged: no use.) */
    if (unlikely(!s) && options.harddecommit && scavenge(npages * PAGE_SIZE + (1u << 20), true) > 0)
        s = alloc_span(npages, spanclass, c, align_pages);
    return s;
}

void mheap_free_span(mspan *s) {
    uintptr_t base = s->base, npages = s->npages;
    if (fs_state(span_free_state(s)) != SPAN_DEAD) throw("freeing span %p that is not dead", (void *)base);
    if (DEBUG_CHECKS) span_check_dead(s);
    lock(&mheap_.lock);
    pages_free(&mheap_.pages, base, npages);
    unlock(&mheap_.lock);
    atomic_fetch_sub_explicit(&mheap_.pages_inuse, npages, memory_order_relaxed);
    fixalloc_free(&mheap_.spanalloc[s->record_kind], s);
    scavenge_poke();
}

/* The pages of s back into c's page cache, if they lie in its window:
 * the window's pages stay allocated in the heap's bitmap whoever holds
 * them, so a page in use goes to the cache by setting its bit (windows of
 * two caches may share an address range; their bits never overlap, and
 * the span's pages are in neither). Ready pages: no scavenged bit. */
static bool free_to_page_cache(mspan *s, mcache *c) {
    uintptr_t base = s->base, npages = s->npages;
    lock(&c->pcache_lock);
    page_cache *pc = &c->pcache;
    bool fits = pc->base && base >= pc->base && base + npages * PAGE_SIZE <= pc->base + PAGE_CACHE_PAGES * PAGE_SIZE;
    if (fits) {
        uint64_t bits = (npages >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << npages) - 1))
                        << ((base - pc->base) >> PAGE_SHIFT);
        if (pc->cache & bits) throw("page cache at %p already holds pages of span %p", (void *)pc->base, (void *)base);
        pc->cache |= bits;
        atomic_fetch_add_explicit(&mheap_.pagecache_free, npages, memory_order_relaxed);
    }
    unlock(&c->pcache_lock);
    return fits;
}

void mheap_release_span(mspan *s, mcache *c) {
    if (c == NULL || c == &mcache_empty || fs_state(span_free_state(s)) != SPAN_DEAD || !free_to_page_cache(s, c)) {
        mheap_free_span(s); /* (which also reports a span that is not dead) */
        return;
    }
    if (DEBUG_CHECKS) span_check_dead(s);
    atomic_fetch_sub_explicit(&mheap_.pages_inuse, s->npages, memory_order_relaxed);
    fixalloc_free(&mheap_.spanalloc[s->record_kind], s);
}

bool mheap_grow_large(mspan *s, uintptr_t new_npages) {
    uintptr_t extra = new_npages - s->npages, scav = 0;
    lock(&mheap_.lock);
    uintptr_t start = s->base + s->npages * PAGE_SIZE;
    bool ok = pages_extend(&mheap_.pages, s->base, s->npages, extra, &scav) && used_locked(start, extra, scav);
    unlock(&mheap_.lock);
    if (!ok) return false;
    if (arena_needs_zero(start, extra) && scav < extra) s->needzero = 1;
    arena_set_spans(start, extra, s);
    s->npages = new_npages;
    s->elemsize = new_npages * PAGE_SIZE;
    s->limit = s->base + s->elemsize;
    atomic_fetch_add_explicit(&mheap_.pages_inuse, extra, memory_order_relaxed);
    return true;
}

void mheap_shrink_large(mspan *s, uintptr_t new_npages) {
    uintptr_t extra = s->npages - new_npages;
    uintptr_t start = s->base + new_npages * PAGE_SIZE;
    s->npages = new_npages;
    s->elemsize = new_npages * PAGE_SIZE;
    s->limit = s->base + s->elemsize;
    lock(&mheap_.lock);
    pages_free(&mheap_.pages, start, extra);
    unlock(&mheap_.lock);
    atomic_fetch_sub_explicit(&mheap_.pages_inuse, extra, memory_order_relaxed);
    scavenge_poke();
}

void mheap_flush_pagecache(page_cache *pc) {
    if (pagecache_empty(pc)) return;
    uint64_t n = (uint64_t)__builtin_popcountll(pc->cache), sc = (uint64_t)__builtin_popcountll(pc->scav);
    lock(&mheap_.lock);
    pagecache_flush(&mheap_.pages, pc);
    unlock(&mheap_.lock);
    atomic_fetch_sub_explicit(&mheap_.pagecache_free, n, memory_order_relaxed);
    atomic_fetch_sub_explicit(&mheap_.pagecache_scav, sc, memory_order_relaxed);
}

void mheap_for_each_span(void (*fn)(mspan *s, void *arg), void *arg) {
    struct page_alloc *p = &mheap_.pages;
    if (!p->end) return;
    uintptr_t addr = p->start * CHUNK_BYTES, end = p->end * CHUNK_BYTES;
    while (addr < end) {
        heap_arena *ha = arena_of(addr);
        if (!ha || ha->palloc != p) {
            addr = round_down(addr, ARENA_BYTES) + ARENA_BYTES;
            continue;
        }
        unsigned ci = (unsigned)((addr - ha->base) >> CHUNK_SHIFT);
        if (!(ha->grown >> ci & 1)) {
            addr = round_down(addr, CHUNK_BYTES) + CHUNK_BYTES;
            continue;
        }
        uintptr_t page = (addr - ha->base) >> PAGE_SHIFT;
        unsigned pi = (unsigned)(page % CHUNK_PAGES);
        if (!(ha->chunks[ci].alloc[pi / 64] >> (pi % 64) & 1)) {
            addr += PAGE_SIZE;
            continue;
        }
        mspan *s = atomic_load_explicit(&ha->spans[page], memory_order_relaxed);
        if (s && s->base == addr && fs_state(span_free_state(s)) != SPAN_DEAD) {
            uintptr_t next = addr + s->npages * PAGE_SIZE; /* fn may free s */
            fn(s, arg);
            addr = next;
        } else {
            addr += PAGE_SIZE; /* a page cache's, or in flight */
        }
    }
}

/* The child after fork, once every span is consistent and every page cache
 * flushed (mcache_fork_child): pages still in use that belong to no live
 * span were being allocated or freed by threads that do not exist here;
 * give them back. Span and cache records such threads held are lost:
 * counted in fork_leaked_* so that heap_check's record totals still add up.
 * pages_inuse is recounted from the live spans. Skipped (everything just
 * stays allocated) if a scavenger claim was in flight at the fork. */
static void count_live(mspan *s, void *arg) {
    uint64_t *n = arg;
    n[0] += s->npages;
    n[1 + s->record_kind] += mheap_.spanalloc[s->record_kind].size;
}

void mheap_fork_reclaim(uint64_t ncaches) {
    struct page_alloc *p = &mheap_.pages;
    if (!p->end || p->claimed_pages) return;
    uintptr_t addr = p->start * CHUNK_BYTES, end = p->end * CHUNK_BYTES, run = 0, run_pages = 0;
    while (addr <= end) {
        heap_arena *ha = addr < end ? arena_of(addr) : NULL;
        bool orphan = false;
        uintptr_t step = PAGE_SIZE;
        if (ha && ha->palloc == p && (ha->grown >> ((addr - ha->base) >> CHUNK_SHIFT) & 1)) {
            uintptr_t page = (addr - ha->base) >> PAGE_SHIFT;
            unsigned ci = (unsigned)(page / CHUNK_PAGES), pi = (unsigned)(page % CHUNK_PAGES);
            if (ha->chunks[ci].alloc[pi / 64] >> (pi % 64) & 1) {
                mspan *s = atomic_load_explicit(&ha->spans[page], memory_order_relaxed);
                if (s && s->base == addr && fs_state(span_free_state(s)) != SPAN_DEAD)
                    step = s->npages * PAGE_SIZE;
                else
                    orphan = true;
            }
        } else if (addr < end) {
            step = round_down(addr, CHUNK_BYTES) + CHUNK_BYTES - addr;
        }
        if (orphan) {
            if (!run_pages) run = addr;
            run_pages++;
        } else if (run_pages) {
            lock(&mheap_.lock);
            pages_free(p, run, run_pages);
            unlock(&mheap_.lock);
            run_pages = 0;
        }
        addr += step;
    }
    uint64_t live[1 + SPAN_RECORD_KINDS] = {0};
    mheap_for_each_span(count_live, live);
    atomic_store_explicit(&mheap_.pages_inuse, live[0], memory_order_relaxed);
    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++)
        mheap_.fork_leaked_records[k] = mheap_.spanalloc[k].inuse - live[1 + k];
    mheap_.fork_leaked_caches = mheap_.cachealloc.inuse - ncaches * mheap_.cachealloc.size;
}


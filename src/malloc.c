/*
 * malloc.c: the gm_ allocation API, its slow paths, start-up and fork.
 *
 * Owns: gm_malloc, gm_calloc, gm_realloc, gm_free and the sized, aligned
 * and usable-size variants, and the size check of C++ sized delete; large
 * objects; validation of pointers coming back (invalid, interior and
 * double frees, wrong sizes); allocator initialisation; the fork handlers.
 * Go counterpart: malloc.go (mallocgc, mallocinit, largeAlloc).
 *
 * Explicit free, our addition to Go (which frees by sweeping mark bits):
 * free finds the span through the arena index and the object index by
 * multiply-shift (no headers). If the calling thread owns the span, the
 * allocation bit is cleared with plain stores: the fast path has no lock
 * and no atomic. If another thread owns it, or nobody does, the free sets a
 * remote-free bit with one atomic OR and is counted in the span's
 * free_state with one atomic add per batch of frees into that span
 * (mcache.c, mcache_remote_pending: producer/consumer 1.25-1.45x faster
 * than one add per free); the owner absorbs those bits when it next needs
 * objects (mspan.c), and unowned spans move between full, partial and free
 * by that count (mcentral.c). Spans stay with the thread that allocates
 * from them (mcache.c), so a thread freeing its own objects never pays for
 * atomics; a thread freeing others' pays about one uncontended atomic per
 * free, and the owner is told once per drain.
 *
 * Misuse (a pointer we never returned, an interior pointer, a double free,
 * a wrong size to a sized free) is found from the arena index and the span
 * metadata ("Pointer validation" below) and reported by report_misuse, one
 * line naming the operation: abort by default, GOMALLOC_ON_ERROR=warn to
 * log and ignore the call. A pointer outside every arena goes to the next
 * allocator instead under GOMALLOC_FOREIGN=pass (foreign.c).
 *
 * Alignment: small objects of size >= 16 are 16-byte aligned (the malloc
 * size tables skip Go's 8-aligned 24-byte class). Larger alignments up to a
 * page use the smallest class whose objects are naturally aligned (spans are
 * page aligned, so object i is aligned to gcd(size, 8192)); beyond a page,
 * an aligned run of pages.
 *
 * errno: ENOMEM for every failed allocation, EINVAL for bad alignments; the
 * free functions preserve errno.
 *
 * Out of memory: whatever the OS refuses (address space, memory, metadata,
 * start-up itself) comes back up as NULL and ends in malloc_failed: errno
 * ENOMEM, the allocator consistent (see mheap.c), memory freed later usable
 * again. GOMALLOC_ON_OOM=abort makes malloc_failed print one line and
 * abort(), for programs that never check. A failed start-up (malloc_init)
 * is tried again by the next allocation.
 */
#include "malloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "foreign.h"
#include "gomalloc.h"
#include "mcentral.h"
#include "mheap.h"
#include "options.h"
#include "os.h"
#include "print.h"
#include "scavenge.h"
#include "stats.h"

_Atomic int malloc_initialised;
static mutex init_lock;

/* ---- Start-up and fork --------------------------------------------------- */

/* Take every allocator lock in the lock order (lock.h), and release them:
 * the fork handlers and heap_check (check.c). */
void malloc_lock_all(void) {
    mcache_fork_prepare();
    scavenge_run_lock();
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++) lock(&mheap_.central[i].lock);
    mcache_fork_lock_caches();
    lock(&mheap_.lock);
    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++) lock(&mheap_.spanalloc[k].lock);
    lock(&mheap_.cachealloc.lock);
    persistentalloc_lock();
}

void malloc_unlock_all(void) {
    persistentalloc_unlock();
    unlock(&mheap_.cachealloc.lock);
    for (unsigned k = SPAN_RECORD_KINDS; k-- > 0;) unlock(&mheap_.spanalloc[k].lock);
    unlock(&mheap_.lock);
    mcache_fork_unlock_caches();
    for (unsigned i = NUM_SPAN_CLASSES; i-- > 0;) unlock(&mheap_.central[i].lock);
    scavenge_run_unlock();
    mcache_fork_parent();
}

/* malloc_lock_all holds the scavenger's run lock: no run is in flight
 * across the fork (its pages would stay claimed forever in the child), and
 * the pause keeps the child's fork handler from starting a scavenger thread
 * while it repairs the heap. */
static void fork_prepare(void) {
    scavenge_pause(true);
    malloc_lock_all();
}
static void fork_parent(void) {
    malloc_unlock_all();
    scavenge_pause(false);
}

static void fork_child(void) {
    persistentalloc_reinit();
    mutex_reinit(&mheap_.cachealloc.lock);
    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++) mutex_reinit(&mheap_.spanalloc[k].lock);
    mutex_reinit(&mheap_.lock);
    for (unsigned i = 0; i < NUM_SPAN_CLASSES; i++) mutex_reinit(&mheap_.central[i].lock);
    scavenge_fork_child();
    mcache_fork_child();
    scavenge_pause(false);
}

/* 0: not registered, 1: being registered, 2: done. */
static _Atomic int fork_handlers_state;

void malloc_register_fork_handlers(void) {
    int expected = 0;
    if (likely(atomic_load_explicit(&fork_handlers_state, memory_order_relaxed) == 2) ||
        !atomic_compare_exchange_strong(&fork_handlers_state, &expected, 1))
        return;
    /* This may allocate (glibc keeps the handler list on the heap) and be
     * refused: the next thread set up tries again. */
    int err = pthread_atfork(fork_prepare, fork_parent, fork_child);
    atomic_store(&fork_handlers_state, err ? 0 : 2);
}

NOINLINE bool malloc_init_slow(void) {
    static bool heap_ready;
    int saved = errno;
    lock(&init_lock);
    if (atomic_load_explicit(&malloc_initialised, memory_order_relaxed)) {
        unlock(&init_lock);
        return true;
    }
    /* Nothing below may call malloc. Each step is done once; after a
     * refusal the next call starts from the step that failed. */
    os_init();
    options_init();
    if (!heap_ready) heap_ready = mheap_init() == 0;
    if (!heap_ready || mcache_init() != 0) {
        unlock(&init_lock);
        if (options.verbose) print_err("gomalloc: start-up refused by the OS (out of memory); will retry\n");
        errno = ENOMEM;
        return false;
    }
    scavenge_init();
    atomic_store_explicit(&malloc_initialised, 1, memory_order_release);
    unlock(&init_lock);
    malloc_register_fork_handlers();
    if (options.verbose) {
        print_err("gomalloc: %s, OS page %zu, huge page %zu%s\n", gm_version(), phys_page_size, phys_huge_page_size,
                  sys_hugepages_usable ? "" : " (transparent huge pages off: GOMALLOC_HUGEPAGES has no effect)");
        options_print(2);
    }
    errno = saved;
    return true;
}

void *malloc_failed(size_t count, size_t size) {
    /* A request refused before anything was allocated (calloc overflow):
     * the options are read by start-up. */
    malloc_init();
    if (options.on_oom_abort) {
        if (count == 1)
            print_err("gomalloc: out of memory allocating %zu bytes\n", size);
        else
            print_err("gomalloc: out of memory allocating %zu x %zu bytes\n", count, size);
        abort();
    }
    errno = ENOMEM;
    return NULL;
}

__attribute__((destructor)) static void malloc_fini(void) {
    if (options.fault) os_fault_report();
    if (!atomic_load_explicit(&malloc_initialised, memory_order_acquire)) return;
    scavenge_shutdown();
    stats_at_exit();
}

EXPORT const char *gm_version(void) {
#ifdef GM_DEBUG
    return "gomalloc 0.1.0 (debug)";
#else
    return "gomalloc 0.1.0";
#endif
}

/* ---- Large objects ----------------------------------------------------- */

void *malloc_large(size_t size, bool zero, size_t align) {
    if (unlikely(size > PTRDIFF_MAX) || unlikely(!malloc_init())) return malloc_failed(1, size);
    uintptr_t npages = round_up(size ? size : 1, PAGE_SIZE) / PAGE_SIZE;
    uintptr_t align_pages = align > PAGE_SIZE ? align / PAGE_SIZE : 1;
    mcache *c = current_cache();
    if (c == &mcache_empty) c = mcache_for_thread();
    mspan *s = c && align_pages <= 1 ? mcache_large_get(c, npages) : NULL;
    if (s) {
        /* A cached large span has every field of one already: it only
         * comes back to life (a new epoch), with used memory. */
        s->needzero = 1;
        uint64_t old = atomic_load_explicit(&s->free_state, memory_order_relaxed);
        atomic_store_explicit(&s->free_state, fs_new_epoch(old, SPAN_LARGE, s->spanclass), memory_order_release);
        if (s->npages > npages) mheap_shrink_large(s, npages); /* a bit larger: trim */
    } else {
        if (!(s = mheap_alloc_span(npages, make_spanclass(0, 1), c, align_pages))) return malloc_failed(1, size);
        scavenge_start_if_wanted(); /* a program of large objects only: scavenge.h */
    }
    if (zero && s->needzero) memset((void *)s->base, 0, size);
    if (c) {
        stat_add(&c->large_nmalloc, 1);
        stat_add(&c->large_alloc_bytes, s->elemsize);
    } else {
        atomic_fetch_add_explicit(&orphan_stats.large_nmalloc, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&orphan_stats.large_alloc_bytes, s->elemsize, memory_order_relaxed);
    }
    return (void *)s->base;
}

/* Free large span s: false if it is not an allocated large object (already
 * freed, or being freed by another thread). The span goes to the calling
 * thread's large-span cache when it fits, else back to the heap. */
static bool free_large(mspan *s) {
    uint64_t v = span_free_state(s);
    if (fs_state(v) != SPAN_LARGE ||
        !atomic_compare_exchange_strong_explicit(&s->free_state, &v, fs_with_state(v, SPAN_DEAD) + FS_GEN_ONE,
                                                 memory_order_acq_rel, memory_order_acquire))
        return false;
    mcache *c = current_cache();
    uint64_t bytes = s->elemsize;
    if (c != &mcache_empty) {
        stat_add(&c->large_nfree, 1);
        stat_add(&c->large_free_bytes, bytes);
    } else {
        atomic_fetch_add_explicit(&orphan_stats.large_nfree, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&orphan_stats.large_free_bytes, bytes, memory_order_relaxed);
    }
    if (!mcache_large_put(c, s)) {
        int saved = errno;
        mheap_free_span(s);
        errno = saved;
    }
    return true;
}

NOINLINE void free_overflow(void *ptr) {
    mspan *s = span_lookup_masked((uintptr_t)ptr);
    mcache *c = current_cache();
    if (unlikely(span_owner(s) != c)) {
        free_slow(ptr); /* a thread past the start of its exit (mcache_thread_exit) */
        return;
    }
    mcache_free_overflow(c, s, ptr);
}

NOINLINE void free_not_owned(void *ptr) { free_not_owned_span(ptr, span_lookup_masked((uintptr_t)ptr)); }

void free_not_owned_span(void *ptr, mspan *s) {
    uintptr_t p = (uintptr_t)ptr;
    if (unlikely(s == NULL)) {
        free_slow(ptr); /* a page in no span */
        return;
    }
    if (likely(s->div_inv != 0)) {
        /* A small object of a span this thread does not own: a remote free,
         * once the pointer is an object start inside the span. */
        uint64_t idx = span_exact_index(s, p);
        if (likely(idx < s->nelems)) {
            span_free_remote(s, p, idx, current_cache(), "free");
            return;
        }
    } else if (p == s->base && !span_owner(s) && free_large(s)) {
        return;
    }
    free_slow(ptr);
}

/* ---- Pointer validation ------------------------------------------------
 *
 * Every pointer handed back (free, the sized frees, realloc,
 * malloc_usable_size, C++ delete) is classified here before anything is
 * changed, and each kind of misuse has one report (print.h has the texts):
 *
 *   no arena at the address        not allocated by gomalloc, or foreign
 *                                  (GOMALLOC_FOREIGN=pass, foreign.c)
 *   arena, page never in a span    not allocated by gomalloc (unused pages)
 *   page of a released span        the arena still names the dead span's
 *                                  record: at one of its object starts a
 *                                  double free (use after free for realloc
 *                                  and malloc_usable_size), elsewhere
 *                                  freed memory
 *   live span, not object start    interior pointer, or past the last object
 *   small object not in use        double free / use after free
 *                                  (object_in_use, the free paths, mspan.c)
 *
 * The page -> span map is never cleared, so a page whose span died still
 * names the record until a new span covers it. The record itself may have
 * been reused for a span elsewhere (its bounds no longer hold the pointer:
 * freed memory) or may sit on its fixalloc free list (state DEAD, every
 * field but the first intact; class_to_size stands in for elemsize, which
 * the free list overwrites). Once pages are reused, a stale pointer is
 * judged against the new span: caught when it is no object start there or
 * names a free object, undetectable when it names a live one. */

enum ptr_kind { PTR_SMALL, PTR_LARGE, PTR_FOREIGN, PTR_BAD };

static const char *freed_what(bool frees) { return frees ? MISUSE_DOUBLE_FREE : MISUSE_USE_AFTER_FREE; }

static void report_interior(const char *op, const void *ptr, uintptr_t start, uintptr_t size) {
    char what[128];
    format_buf(what, sizeof what, MISUSE_INTERIOR_FMT, (size_t)((uintptr_t)ptr - start), (size_t)size,
               (void *)start);
    report_misuse(op, ptr, what);
}

/* Classify ptr for operation op (frees: op frees the object), reporting
 * misuse. On success *sp is its span and *idxp its object index (small). */
static enum ptr_kind classify(const void *ptr, const char *op, bool frees, mspan **sp, uintptr_t *idxp) {
    uintptr_t p = (uintptr_t)ptr;
    mspan *s = span_lookup(p);
    if (!s) {
        /* Possibly the first call into the library: options decide. */
        malloc_init();
        if (arena_of(p)) {
            report_misuse(op, ptr, MISUSE_UNUSED_HEAP);
            return PTR_BAD;
        }
        if (options.foreign_pass) return PTR_FOREIGN;
        report_misuse(op, ptr, MISUSE_NOT_OURS);
        return PTR_BAD;
    }
    unsigned st = fs_state(span_free_state(s));
    uintptr_t base = s->base;
    if (p < base || p >= base + s->npages * PAGE_SIZE) {
        report_misuse(op, ptr, MISUSE_FREED_MEMORY); /* a dead span's record, reused elsewhere */
        return PTR_BAD;
    }
    unsigned cls = spanclass_sizeclass(s->spanclass);
    if (st == SPAN_DEAD) {
        bool start = cls == 0 ? p == base
                              : span_object_index(s, p - base) * class_to_size[cls] == p - base &&
                                    span_object_index(s, p - base) < s->nelems;
        report_misuse(op, ptr, start ? freed_what(frees) : MISUSE_FREED_MEMORY);
        return PTR_BAD;
    }
    *sp = s;
    if (st == SPAN_LARGE) {
        if (p != base) {
            report_interior(op, ptr, base, s->elemsize);
            return PTR_BAD;
        }
        return PTR_LARGE;
    }
    uintptr_t off = p - base, idx = span_object_index(s, off);
    if (idx >= s->nelems) {
        report_misuse(op, ptr, MISUSE_PAST_LAST);
        return PTR_BAD;
    }
    if (idx * s->elemsize != off) {
        report_interior(op, ptr, base + idx * s->elemsize, s->elemsize);
        return PTR_BAD;
    }
    *idxp = idx;
    return PTR_SMALL;
}

/* A pointer outside every arena, under GOMALLOC_FOREIGN=pass, that no next
 * allocator can take. */
static void report_no_next(const char *op, const void *ptr) { report_misuse(op, ptr, MISUSE_NO_NEXT); }

/* Is small object idx of s in use? Exact for spans this thread owns and for
 * unowned spans; for another thread's span it sees the bits and the tag of
 * its owner's reuse lists, but not the owner's allocation window (a slot
 * freed there reads as in use). */
static bool object_in_use(mspan *s, uintptr_t idx) {
    unsigned w = (unsigned)(idx >> 6);
    uint64_t bit = (uint64_t)1 << (idx & 63);
    mcache *c = current_cache();
    uint64_t window = span_owner(s) == c ? cache_window_for(cache_class_of(c, s->spanclass), s, w) : 0;
    if (!(span_alloc_word(s, w) & ~(window | span_remote_word(s, w)) & bit)) return false;
    void *p = (void *)span_object_at(s, (unsigned)idx);
    if (s->elemsize >= 16 && reuse_tagged(p))
        return span_owner(s) == c ? !mcache_reuse_contains(c, s->spanclass, p) : false;
    return true;
}

/* The free path behind every free-like operation: validate, then free. */
static void free_checked(void *ptr, const char *op) {
    int saved = errno;
    mspan *s;
    uintptr_t idx = 0;
    switch (classify(ptr, op, true, &s, &idx)) {
    case PTR_LARGE:
        if (!free_large(s)) report_misuse(op, ptr, MISUSE_DOUBLE_FREE); /* freed meanwhile by another thread */
        break;
    case PTR_SMALL: {
        mcache *c = current_cache();
        if (span_owner(s) == c) {
            /* The fast path declined an owned object: not in use, already
             * on the reuse list, or the list is full. */
            unsigned w = (unsigned)(idx >> 6);
            uint64_t bit = (uint64_t)1 << (idx & 63);
            uint64_t window = cache_window_for(cache_class_of(c, s->spanclass), s, w);
            if (!(span_alloc_word(s, w) & ~(window | span_remote_word(s, w)) & bit))
                report_misuse(op, ptr, span_remote_word(s, w) & bit ? MISUSE_DOUBLE_FREE_REMOTE : MISUSE_DOUBLE_FREE);
            else if (s->elemsize >= 16 && reuse_tagged(ptr) && mcache_reuse_contains(c, s->spanclass, ptr))
                report_misuse(op, ptr, MISUSE_DOUBLE_FREE);
            else
                mcache_free_local(c, s, ptr);
        } else {
            span_free_remote(s, (uintptr_t)ptr, idx, c, op);
        }
        break;
    }
    case PTR_FOREIGN:
        if (!foreign_free(ptr)) report_no_next(op, ptr);
        break;
    case PTR_BAD:
        break;
    }
    errno = saved;
}

NOINLINE void free_slow(void *ptr) {
    if (!ptr) return;
    free_checked(ptr, "free");
}

size_t usable_size_checked(const void *ptr, const char *op) {
    mspan *s;
    uintptr_t idx = 0;
    switch (classify(ptr, op, false, &s, &idx)) {
    case PTR_LARGE:
        return s->elemsize;
    case PTR_SMALL:
        if (!object_in_use(s, idx)) {
            report_misuse(op, ptr, MISUSE_USE_AFTER_FREE);
            return 0;
        }
        return s->elemsize;
    case PTR_FOREIGN: {
        size_t n = 0;
        if (!foreign_usable_size(ptr, &n)) report_no_next(op, ptr);
        return n;
    }
    default:
        return 0;
    }
}

/* Large objects resized in place: keep the byte counters right. */
static void count_large_resize(uintptr_t old_bytes, uintptr_t new_bytes) {
    mcache *c = current_cache();
    if (new_bytes > old_bytes) {
        if (c != &mcache_empty)
            stat_add(&c->large_alloc_bytes, new_bytes - old_bytes);
        else
            atomic_fetch_add_explicit(&orphan_stats.large_alloc_bytes, new_bytes - old_bytes, memory_order_relaxed);
    } else {
        if (c != &mcache_empty)
            stat_add(&c->large_free_bytes, old_bytes - new_bytes);
        else
            atomic_fetch_add_explicit(&orphan_stats.large_free_bytes, old_bytes - new_bytes, memory_order_relaxed);
    }
}

/* ---- The API ------------------------------------------------------------ */

EXPORT void *gm_malloc(size_t size) { return malloc_inline(size); }

EXPORT void gm_free(void *ptr) { free_inline(ptr); }

EXPORT void *gm_calloc(size_t count, size_t size) {
    size_t n;
    if (unlikely(__builtin_mul_overflow(count, size, &n))) return malloc_failed(count, size);
    if (n > MAX_SMALL_SIZE) return malloc_large(n, true, 0);
    uint8_t spc = small_spanclass(n);
    if (reuse_depth(cache_class_of(current_cache(), spc))) {
        void *p = alloc_small(spc, n); /* recycled: always dirty */
        return memset(p, 0, n);
    }
    void *p = alloc_small(spc, n);
    if (p) {
        mspan *s = span_lookup((uintptr_t)p);
        if (s->needzero) memset(p, 0, n);
    }
    return p;
}

EXPORT size_t gm_usable_size(const void *ptr) {
    if (!ptr) return 0;
    int saved = errno;
    size_t n = usable_size_checked(ptr, "malloc_usable_size");
    errno = saved;
    return n;
}

EXPORT size_t gm_good_size(size_t size) {
    if (size <= MAX_SMALL_SIZE) return class_to_size[spanclass_sizeclass(small_spanclass(size))];
    if (size > PTRDIFF_MAX) return size;
    return round_up(size, PAGE_SIZE);
}

/* realloc that moves: a new object, the old one's bytes, free the old. */
static void *realloc_move(void *ptr, size_t old, size_t size) {
    void *q = malloc_inline(size);
    if (!q) return NULL; /* errno ENOMEM, ptr untouched */
    memcpy(q, ptr, old < size ? old : size);
    free_inline(ptr);
    return q;
}

EXPORT void *gm_realloc(void *ptr, size_t size) {
    if (!ptr) return malloc_inline(size);
    if (size == 0) {
        /* glibc's behaviour (C23 leaves it undefined): free, return NULL. */
        free_checked(ptr, "realloc");
        return NULL;
    }
    mspan *s = span_lookup_masked((uintptr_t)ptr);
    size_t old;
    if (likely(s != NULL) && likely(span_owner(s) == current_cache()) && owned_object_in_use(s, (uintptr_t)ptr)) {
        /* The free fast path's test (malloc.h). */
        old = s->elemsize;
        if (size <= old && size > old / 2) return ptr;
        return realloc_move(ptr, old, size);
    }
    uintptr_t idx = 0;
    enum ptr_kind kind = classify(ptr, "realloc", false, &s, &idx);
    if (kind == PTR_FOREIGN) {
        void *q;
        if (foreign_realloc(ptr, size, &q)) return q;
        report_no_next("realloc", ptr);
        kind = PTR_BAD;
    }
    if (kind == PTR_BAD) {
        errno = EINVAL;
        return NULL;
    }
    if (kind == PTR_SMALL && !object_in_use(s, idx)) {
        report_misuse("realloc", ptr, MISUSE_USE_AFTER_FREE);
        errno = EINVAL;
        return NULL;
    }
    old = s->elemsize;
    if (kind == PTR_SMALL) {
        /* Stay if the new size fits and would not fit a class half the size. */
        if (size <= old && size > old / 2) return ptr;
    } else if (size > MAX_SMALL_SIZE && size <= PTRDIFF_MAX) {
        uintptr_t npages = round_up(size, PAGE_SIZE) / PAGE_SIZE;
        if (npages == s->npages) return ptr;
        if (npages < s->npages) {
            mheap_shrink_large(s, npages);
            count_large_resize(old, s->elemsize);
            return ptr;
        }
        if (mheap_grow_large(s, npages)) {
            count_large_resize(old, s->elemsize);
            return ptr;
        }
    }
    return realloc_move(ptr, old, size);
}

EXPORT void *gm_reallocarray(void *ptr, size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) return malloc_failed(count, size);
    return gm_realloc(ptr, n);
}

/* The span class an allocation of size bytes aligned to align (a power of
 * two) gets, or 0 for a large object. Allocation and the sized-free checks
 * both ask this one function. */
static uint8_t spanclass_for(size_t size, size_t align) {
    if (size > MAX_SMALL_SIZE || align > PAGE_SIZE) return 0;
    if (align <= 8 || (align <= 16 && size >= 16)) return small_spanclass(size);
    /* Smallest class holding max(size, align) whose objects are aligned:
     * spans are page aligned, so object i is aligned to gcd(size, 8192). */
    unsigned cls = spanclass_sizeclass(small_spanclass(size < align ? align : size));
    while (cls < NUM_SIZE_CLASSES && class_to_min_align[cls] < align) cls++;
    return cls < NUM_SIZE_CLASSES ? make_spanclass(cls, 1) : 0;
}

static void *aligned_alloc_internal(size_t align, size_t size) {
    uint8_t spc = spanclass_for(size, align);
    if (spc) return alloc_small(spc, size);
    if (align > ((size_t)1 << (HEAP_ADDR_BITS - 2))) return malloc_failed(1, size);
    return malloc_large(size, false, align);
}

static inline bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

EXPORT void *gm_aligned_alloc(size_t align, size_t size) {
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_alloc_internal(align, size);
}

EXPORT void *gm_memalign(size_t align, size_t size) {
    if (align == 0) align = 1;
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_alloc_internal(align, size);
}

EXPORT int gm_posix_memalign(void **out, size_t align, size_t size) {
    if (!is_pow2(align) || align % sizeof(void *)) return EINVAL;
    int saved = errno;
    void *p = aligned_alloc_internal(align, size);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

/* Could ptr, in span s, have come from an allocation of size bytes aligned
 * to align (0: unaligned: malloc, calloc, realloc, operator new)? Small:
 * the allocation's own class, or (unaligned) any size a realloc leaves in
 * place, more than half the object. Large: the pages the size rounds up to (realloc resizes large
 * objects to exactly that). Reads only fields a stale record also has, so
 * callers may ask before they know s is alive. */
static bool size_matches(mspan *s, size_t size, size_t align) {
    uintptr_t elemsize = s->elemsize;
    if (spanclass_sizeclass(s->spanclass) == 0) {
        if (size == 0) size = 1; /* aligned_alloc(a, 0) took a page */
        return size <= elemsize && elemsize - size < PAGE_SIZE;
    }
    if (spanclass_for(size, align ? align : 1) == s->spanclass) return true;
    return align == 0 && size <= elemsize && size > elemsize / 2;
}

static void report_size(const char *op, const void *ptr, size_t size, size_t align, mspan *s) {
    char what[128];
    if (align)
        format_buf(what, sizeof what, MISUSE_SIZE_ALIGN_FMT, size, align, (size_t)s->elemsize);
    else
        format_buf(what, sizeof what, MISUSE_SIZE_FMT, size, (size_t)s->elemsize);
    report_misuse(op, ptr, what);
}

/* The sized frees once the quick look failed, or always (free_sized):
 * every check free makes, reported under ptr_op, then the size, reported
 * under size_op; only then the free. */
static NOINLINE void free_sized_checked(void *ptr, size_t size, size_t align, const char *ptr_op,
                                        const char *size_op) {
    if (!ptr) return;
    int saved = errno;
    mspan *s;
    uintptr_t idx = 0;
    switch (classify(ptr, ptr_op, true, &s, &idx)) {
    case PTR_SMALL:
        if (!object_in_use(s, idx)) {
            report_misuse(ptr_op, ptr, MISUSE_DOUBLE_FREE);
            break;
        }
        /* fall through */
    case PTR_LARGE:
        if (!size_matches(s, size, align))
            report_size(size_op, ptr, size, align, s);
        else
            free_inline(ptr);
        break;
    case PTR_FOREIGN:
        /* The size cannot be checked; the next allocator's free takes it. */
        if (!foreign_free(ptr)) report_no_next(ptr_op, ptr);
        break;
    case PTR_BAD:
        break;
    }
    errno = saved;
}

/* C23's sized frees are rare enough to be checked in full, every report
 * naming them. */
EXPORT void gm_free_sized(void *ptr, size_t size) {
    free_sized_checked(ptr, size, 0, "free_sized", "free_sized");
}

EXPORT void gm_free_aligned_sized(void *ptr, size_t align, size_t size) {
    free_sized_checked(ptr, size, align, "free_aligned_sized", "free_aligned_sized");
}

/* C++ sized delete (new.cc; align 0 for the unaligned forms). Every delete
 * is a free: its pointer checks are free's and report as free(...). The
 * size the compiler passes is checked too, with the sized frees' rule, but
 * cheaply, since this is the common path of C++: the span the pointer maps
 * to must fit the size. Only when it does not is the pointer validated in
 * full; a wrong size on a valid object is then reported under op
 * ("operator delete", "operator delete[]"). */
static NOINLINE void delete_sized_slow(void *ptr, size_t size, size_t align, const char *op) {
    mspan *s = span_lookup((uintptr_t)ptr);
    if (s && size_matches(s, size, align))
        free_inline(ptr);
    else
        free_sized_checked(ptr, size, align, "free", op);
}

void delete_sized_checked(void *ptr, size_t size, size_t align, const char *op); /* declared in new.cc */
void delete_sized_checked(void *ptr, size_t size, size_t align, const char *op) {
    /* The common case inline: an unaligned small object of its own class,
     * checked against the free-map entry if the thread owns the page, else
     * against the span. */
    uintptr_t p = (uintptr_t)ptr;
    if (likely(align == 0) && likely(size <= MAX_SMALL_SIZE) && likely((p >> ARENA_SHIFT) < ARENA_INDEX_LEN)) {
        unsigned spc = small_spanclass(size);
        const char *maps = (const char *)&free_maps;
        uintptr_t off = free_entry_offset(maps, p);
        if (likely(free_entry_owner((const struct free_entry *)(maps + off)) == thread_id())) {
            if (likely(ENTRY_FIELD(maps, off, spanclass) == spc)) {
                free_owned(ptr, maps, off);
                return;
            }
        } else {
            mspan *s = span_lookup_masked(p);
            if (s != NULL && spc == s->spanclass) {
                free_not_owned_span(ptr, s);
                return;
            }
        }
    }
    delete_sized_slow(ptr, size, align, op);
}

/*
 * malloc.c: the gm_ allocation API, its slow paths, start-up and fork.
 *
 * Owns: gm_malloc, gm_calloc, gm_realloc, gm_free and the sized, aligned
 * and usable-size variants; large objects; validation of pointers coming
 * back (invalid, interior and double frees); allocator initialisation; the
 * fork handlers.
 * Go counterpart: malloc.go (mallocgc, mallocinit, largeAlloc).
 *
 * Explicit free, our addition to Go (which frees by sweeping mark bits):
 * free finds the span through the arena index and the object index by
 * multiply-shift (no headers). If the calling thread owns the span, the
 * allocation bit is cleared with plain stores: the fast path has no lock
 * and no atomic. If another thread owns it, or nobody does, the free sets a
 * remote-free bit with one atomic OR and counts itself with one atomic add;
 * the owner absorbs those bits when it next needs objects (mspan.c), and
 * unowned spans move between full, partial and free by that count
 * (mcentral.c). Spans stay with the thread that allocates from them
 * (mcache.c), so a thread freeing its own objects never pays for atomics;
 * a thread freeing others' pays two uncontended atomics, and the owner is
 * told once per drain.
 *
 * Misuse (a pointer we never returned, an interior pointer, a double free)
 * is found from the span metadata and reported by report_misuse: abort by
 * default, GOMALLOC_ON_ERROR=warn to log and ignore the call.
 *
 * Alignment: small objects of size >= 16 are 16-byte aligned (the malloc
 * size tables skip Go's 8-aligned 24-byte class). Larger alignments up to a
 * page use the smallest class whose objects are naturally aligned (spans are
 * page aligned, so object i is aligned to gcd(size, 8192)); beyond a page,
 * an aligned run of pages.
 *
 * errno: ENOMEM for every failed allocation, EINVAL for bad alignments; the
 * free functions preserve errno.
 */
#include "malloc.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
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
    mcache_fork_parent();
}

/* A scavenger run in flight (pages claimed, madvise under way) would never
 * finish in the child: no new run starts, and the ones in flight are waited
 * for (a run is at most 4 MiB; bounded at ~1 s, after which their pages
 * stay claimed in the child). */
static void fork_prepare(void) {
    scavenge_pause(true);
    malloc_lock_all();
    for (int i = 0; i < 10000 && mheap_.pages.claimed_pages; i++) {
        malloc_unlock_all();
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        malloc_lock_all();
    }
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

void malloc_init(void) {
    if (likely(atomic_load_explicit(&malloc_initialised, memory_order_acquire))) return;
    lock(&init_lock);
    if (atomic_load_explicit(&malloc_initialised, memory_order_relaxed)) {
        unlock(&init_lock);
        return;
    }
    /* Nothing below may call malloc. */
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    uintptr_t seed = 0x9E3779B97F4A7C15ull;
    for (int i = 0; rnd && i < 16; i++) seed = (seed ^ rnd[i]) * 0x100000001B3ull;
    reuse_tag = seed | 1;
    os_init();
    options_init();
    mheap_init();
    mcache_init();
    scavenge_init();
    atomic_store_explicit(&malloc_initialised, 1, memory_order_release);
    unlock(&init_lock);
    /* These may allocate (glibc keeps the handler list on the heap). */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (options.verbose) {
        print_err("gomalloc: %s, OS page %zu, huge page %zu\n", gm_version(), phys_page_size, phys_huge_page_size);
        options_print(2);
    }
}

__attribute__((destructor)) static void malloc_fini(void) {
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
    if (unlikely(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    malloc_init();
    uintptr_t npages = round_up(size ? size : 1, PAGE_SIZE) / PAGE_SIZE;
    uintptr_t align_pages = align > PAGE_SIZE ? align / PAGE_SIZE : 1;
    mcache *c = current_cache();
    if (c == &mcache_empty) c = mcache_for_thread();
    mspan *s = mheap_alloc_span(npages, make_spanclass(0, 1), c, align_pages);
    if (!s) return NULL;
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

static void free_large(mspan *s, void *ptr) {
    uint64_t v = span_free_state(s);
    if (fs_state(v) != SPAN_LARGE ||
        !atomic_compare_exchange_strong_explicit(&s->free_state, &v, fs_with_state(v, SPAN_DEAD) + FS_GEN_ONE,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        report_misuse("free", ptr, "double free (large object already freed)");
        return;
    }
    mcache *c = current_cache();
    uint64_t bytes = s->elemsize;
    if (c != &mcache_empty) {
        stat_add(&c->large_nfree, 1);
        stat_add(&c->large_free_bytes, bytes);
    } else {
        atomic_fetch_add_explicit(&orphan_stats.large_nfree, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&orphan_stats.large_free_bytes, bytes, memory_order_relaxed);
    }
    mheap_free_span(s);
}

/* ---- Pointer validation ------------------------------------------------ */

enum ptr_kind { PTR_SMALL, PTR_LARGE, PTR_BAD };

/* Classify ptr for operation op, reporting misuse. On success *sp is its
 * span and *idxp its object index (small). */
static enum ptr_kind classify(const void *ptr, const char *op, mspan **sp, uintptr_t *idxp) {
    uintptr_t p = (uintptr_t)ptr;
    mspan *s = span_lookup(p);
    if (!s) {
        report_misuse(op, ptr, "pointer not allocated by gomalloc");
        return PTR_BAD;
    }
    unsigned st = fs_state(span_free_state(s));
    if (st == SPAN_DEAD || p < s->base || p >= s->base + s->npages * PAGE_SIZE) {
        report_misuse(op, ptr, "double free or invalid pointer (its memory is already free)");
        return PTR_BAD;
    }
    *sp = s;
    if (st == SPAN_LARGE) {
        if (p != s->base) {
            report_misuse(op, ptr, "interior pointer into a large object");
            return PTR_BAD;
        }
        return PTR_LARGE;
    }
    uintptr_t off = p - s->base, idx = span_object_index(s, off);
    if (idx >= s->nelems || idx * s->elemsize != off) {
        report_misuse(op, ptr, idx < s->nelems ? "interior pointer (not the start of an object)"
                                               : "pointer past the last object of its span");
        return PTR_BAD;
    }
    *idxp = idx;
    return PTR_SMALL;
}

/* Is small object idx of s in use? Exact for spans this thread owns and for
 * unowned spans; for another thread's span it sees the bits and the tag of
 * its owner's reuse lists. */
static bool object_in_use(mspan *s, uintptr_t idx) {
    unsigned w = (unsigned)(idx >> 6);
    uint64_t bit = (uint64_t)1 << (idx & 63);
    mcache *c = current_cache();
    uint64_t window = span_owner(s) == c ? cache_window_for(&c->k[s->spanclass], s, w) : 0;
    if (!(span_alloc_word(s, w) & ~(window | span_remote_word(s, w)) & bit)) return false;
    void *p = (void *)span_object_at(s, (unsigned)idx);
    if (s->elemsize >= 16 && reuse_tagged(p))
        return span_owner(s) == c ? !mcache_reuse_contains(c, s->spanclass, p) : false;
    return true;
}

NOINLINE void free_slow(void *ptr) {
    if (!ptr) return;
    int saved = errno;
    mspan *s;
    uintptr_t idx = 0;
    switch (classify(ptr, "free", &s, &idx)) {
    case PTR_LARGE:
        free_large(s, ptr);
        break;
    case PTR_SMALL: {
        mcache *c = current_cache();
        if (span_owner(s) == c) {
            /* The fast path declined an owned object: not in use, already
             * on the reuse list, or the list is full. */
            unsigned w = (unsigned)(idx >> 6);
            uint64_t bit = (uint64_t)1 << (idx & 63);
            uint64_t window = cache_window_for(&c->k[s->spanclass], s, w);
            if (!(span_alloc_word(s, w) & ~(window | span_remote_word(s, w)) & bit))
                report_misuse("free", ptr, span_remote_word(s, w) & bit
                                               ? "double free (object already freed by another thread)"
                                               : "double free (object is not allocated)");
            else if (s->elemsize >= 16 && reuse_tagged(ptr) && mcache_reuse_contains(c, s->spanclass, ptr))
                report_misuse("free", ptr, "double free (object already freed)");
            else
                mcache_free_local(c, s, ptr);
        } else {
            span_free_remote(s, (uintptr_t)ptr, idx, c);
        }
        break;
    }
    case PTR_BAD:
        break;
    }
    errno = saved;
}

size_t usable_size_checked(const void *ptr, const char *op) {
    mspan *s;
    uintptr_t idx = 0;
    switch (classify(ptr, op, &s, &idx)) {
    case PTR_LARGE:
        return s->elemsize;
    case PTR_SMALL:
        if (!object_in_use(s, idx)) {
            report_misuse(op, ptr, "pointer to a freed object");
            return 0;
        }
        return s->elemsize;
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
    if (unlikely(__builtin_mul_overflow(count, size, &n))) {
        errno = ENOMEM;
        return NULL;
    }
    if (n > MAX_SMALL_SIZE) return malloc_large(n, true, 0);
    uint8_t spc = small_spanclass(n);
    if (current_cache()->k[spc].nreuse) {
        void *p = alloc_small(spc); /* recycled: always dirty */
        return memset(p, 0, n);
    }
    void *p = alloc_small(spc);
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

EXPORT void *gm_realloc(void *ptr, size_t size) {
    if (!ptr) return malloc_inline(size);
    if (size == 0) {
        /* glibc's behaviour (C23 leaves it undefined): free, return NULL. */
        free_inline(ptr);
        return NULL;
    }
    mspan *s;
    uintptr_t idx = 0;
    size_t old;
    enum ptr_kind kind = classify(ptr, "realloc", &s, &idx);
    if (kind == PTR_BAD) {
        errno = EINVAL;
        return NULL;
    }
    if (kind == PTR_SMALL && !object_in_use(s, idx)) {
        report_misuse("realloc", ptr, "pointer to a freed object");
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
    void *q = malloc_inline(size);
    if (!q) return NULL; /* errno ENOMEM, ptr untouched */
    memcpy(q, ptr, old < size ? old : size);
    free_inline(ptr);
    return q;
}

EXPORT void *gm_reallocarray(void *ptr, size_t count, size_t size) {
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
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
    if (spc) return alloc_small(spc);
    if (align > ((size_t)1 << (HEAP_ADDR_BITS - 2))) {
        errno = ENOMEM;
        return NULL;
    }
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

/* Could the object in s have been allocated with size bytes (aligned to
 * align), by an allocation function or by a realloc that kept it in place? */
static bool size_matches(mspan *s, size_t size, size_t align) {
    if (fs_state(span_free_state(s)) == SPAN_LARGE) {
        size_t n = size ? size : 1; /* a large span of size 0 (aligned) has one page */
        return n <= s->elemsize && s->elemsize - n < PAGE_SIZE;
    }
    if (spanclass_for(size, align ? align : 1) == s->spanclass) return true;
    /* gm_realloc keeps a small object for any size that fits and is more
     * than half of it: free_sized then gets that size (C23: the size passed
     * to the function that returned ptr). */
    return !align && size <= s->elemsize && size > s->elemsize / 2;
}

static void free_sized_checked(void *ptr, size_t size, size_t align, const char *op) {
    if (!ptr) return;
    mspan *s = span_lookup((uintptr_t)ptr);
    if (s && fs_state(span_free_state(s)) != SPAN_DEAD && !size_matches(s, size, align)) {
        char what[96];
        format_buf(what, sizeof what, "size %zu does not match the allocation (usable size %zu)", size,
                   (size_t)s->elemsize);
        report_misuse(op, ptr, what);
        return;
    }
    free_inline(ptr);
}

EXPORT void gm_free_sized(void *ptr, size_t size) { free_sized_checked(ptr, size, 0, "free_sized"); }

EXPORT void gm_free_aligned_sized(void *ptr, size_t align, size_t size) {
    free_sized_checked(ptr, size, align, "free_aligned_sized");
}

/*
 * mcache.h: the per-thread cache (interface of mcache.c).
 * Go counterpart: mcache.go (per P there, per thread here).
 */
#ifndef GOMALLOC_MCACHE_H
#define GOMALLOC_MCACHE_H

#include "internal.h"
#include "lock.h"
#include "mspan.h"
#include "pagealloc.h"

/* Summed statistics of one size class (stats.c). */
struct class_stats {
    uint64_t nmalloc;
    uint64_t nfree;
};

/* Everything the fast paths touch for one span class, in one cache line.
 * Owner only; the counters are read (relaxed) by statistics readers. */
#define REUSE_MAX 64
#define REUSE_STACK_BYTES (REUSE_MAX * sizeof(void *))

#define NO_WINDOW 0xffff

/* Counters: objects handed out = nmalloc + pushes - nflushed - depth (what
 * went onto the reuse stack and did not leave it by a flush was popped by
 * malloc, so the pop path counts nothing); objects freed = pushes + nfree
 * (mcache.counts). The reuse stack's depth, in bytes, and its push count
 * share one word, so that a push is one add to memory (REUSE_PUSH) and a
 * pop one subtract (REUSE_POP), and the depth is also the byte offset of
 * the top of the stack. */
#define REUSE_DEPTH_BITS 16
#define REUSE_DEPTH_MASK (((uint64_t)1 << REUSE_DEPTH_BITS) - 1)
#define REUSE_POP ((uint64_t)sizeof(void *))                       /* depth - 1 object */
#define REUSE_PUSH (((uint64_t)1 << REUSE_DEPTH_BITS) + REUSE_POP) /* depth + 1, pushes + 1 */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "struct cache_class reads the low 16 bits of reuse_word as reuse_bytes"
#endif
struct cache_class {
    mspan *alloc;         /* the current span; never NULL (emptyspan) */
    uint64_t window;      /* free objects of its current 64-object word (1 = free):
                             Go's allocCache */
    uintptr_t window_base;/* address of the first object of that word */
    uint64_t nmalloc;     /* objects claimed by window loads, minus those put back */
    union {
        uint64_t reuse_word;  /* bits 0-15: bytes on the reuse stack (8 per
                                 object); 16-63: objects ever pushed on it */
        uint16_t reuse_bytes; /* its low 16 bits, which the fast paths load */
    };
    uint32_t reuse_end;   /* the stack's capacity in bytes; 0 for the 8-byte
                             class (no room for the tag word, see mcache.c) and
                             for the scan classes */
    uint16_t elemsize;    /* object size of the class (at most 32 KiB) */
    uint16_t tag_off;     /* where malloc clears the free tag: 8 (word 1), or
                             0 for 8-byte objects, which have no tag */
    uint16_t window_word; /* the word of alloc the window covers, or NO_WINDOW */
} __attribute__((aligned(CACHE_LINE)));

/* One size class's two slots and the reuse stack of the noscan one, laid
 * out so that the stack ends where the noscan slot starts: the fast paths
 * find the stack at a fixed offset from the slot, with no pointer to load.
 * (Plain malloc memory is noscan; the scan slots, kept for the GC mode,
 * have no stack: reuse_end 0.) tools/mksizeclasses.c makes malloc's slot
 * tables from the same two constants. */
#define CLASS_BLOCK_BYTES 640
#define NOSCAN_SLOT_OFFSET 576
struct class_block {
    struct cache_class scan;
    void *reuse_stack[REUSE_MAX]; /* objects this thread freed, not yet given
                                     back to their spans (mcache.c) */
    struct cache_class noscan;
};
_Static_assert(sizeof(struct class_block) == CLASS_BLOCK_BYTES, "tools/mksizeclasses.c");
_Static_assert(offsetof(struct class_block, noscan) == NOSCAN_SLOT_OFFSET, "tools/mksizeclasses.c");
_Static_assert(offsetof(struct class_block, noscan) - offsetof(struct class_block, reuse_stack) == REUSE_STACK_BYTES,
               "the stack ends at the noscan slot");

/* Byte offset of span class spc's slot from the start of its cache (the
 * offsets malloc's size tables hold). */
static inline unsigned cache_slot_offset(unsigned spc) {
    return (spc >> 1) * CLASS_BLOCK_BYTES + (spc & 1) * NOSCAN_SLOT_OFFSET;
}
/* Its inverse: the span class of the slot at byte offset off. */
static inline uint8_t cache_slot_spanclass(unsigned off) {
    return (uint8_t)(off / CLASS_BLOCK_BYTES * 2 + (off % CLASS_BLOCK_BYTES == NOSCAN_SLOT_OFFSET));
}
/* A slot's reuse stack (slots with reuse_end > 0 only). */
static ALWAYS_INLINE void **reuse_stack(struct cache_class *k) {
    return (void **)((char *)k - REUSE_STACK_BYTES);
}

_Static_assert(sizeof(struct cache_class) == CACHE_LINE, "one cache line per class");

/* The reuse stack's depth and push count (owner; statistics readers load
 * the word relaxed). */
static ALWAYS_INLINE uint32_t reuse_depth(const struct cache_class *k) {
    return (uint32_t)(__atomic_load_n(&k->reuse_word, __ATOMIC_RELAXED) & REUSE_DEPTH_MASK) / sizeof(void *);
}
static inline uint64_t reuse_pushes(const struct cache_class *k) {
    return __atomic_load_n(&k->reuse_word, __ATOMIC_RELAXED) >> REUSE_DEPTH_BITS;
}
static ALWAYS_INLINE void reuse_word_set(struct cache_class *k, uint64_t v) {
    __atomic_store_n(&k->reuse_word, v, __ATOMIC_RELAXED);
}
/* Add v to the word (the owner: one add to memory on x86-64, which a
 * statistics reader sees whole; elsewhere a relaxed load and store). */
static ALWAYS_INLINE void reuse_word_add(struct cache_class *k, uint64_t v) {
#if defined(__x86_64__)
    __asm__("addq %1, %0" : "+m"(k->reuse_word) : "er"(v));
#else
    reuse_word_set(k, __atomic_load_n(&k->reuse_word, __ATOMIC_RELAXED) + v);
#endif
}

/* Hand out the next object of k's window (not empty): clear its free tag. */
static ALWAYS_INLINE void *cache_window_pop(struct cache_class *k) {
    uint64_t window = k->window;
    __atomic_store_n(&k->window, window & (window - 1), __ATOMIC_RELAXED); /* read by mcache_sum_stats */
    char *p = (char *)(k->window_base + (uintptr_t)__builtin_ctzll(window) * k->elemsize);
    *(uintptr_t *)(p + k->tag_off) = 0;
    return p;
}

/* The window bits covering word w of s, if s is k's current span. */
static inline uint64_t cache_window_for(const struct cache_class *k, const mspan *s, unsigned w) {
    return k->alloc == s && k->window_word == w ? k->window : 0;
}

/* Empty spans a thread keeps for its next refills, in bytes; their
 * countdown (mspan.h). */
#define EMPTY_KEEP_BYTES ((uint64_t)512 << 10)
#define COUNTDOWN_EMPTY (UINT32_MAX - 1)

/* Remote frees by one thread into one span whose bits are set but which
 * are not yet added to the span's free_state count. */
struct remote_pending {
    mspan *span;
    uint32_t n;
    uint32_t limit; /* counted when n reaches this */
};
/* An entry is counted when it reaches an eighth of its span's objects
 * (at least 4): an owner switches back to a span of its own once an eighth
 * of it is free (mcache.c, reuse_threshold), so it learns of the frees in
 * time to reuse the span instead of taking a new one. (Counting only when
 * the freeing thread moved on to another span kept 15% more memory in
 * producer/consumer at 8 threads, at the same speed.) */
static inline uint32_t remote_limit(const mspan *s) {
    uint32_t l = s->nelems / 8u;
    return l > 4 ? l : 4;
}
/* Every this many entry replacements (a new span, or a full entry), a
 * thread counts all its entries, so a class it has stopped freeing into
 * does not keep its last span's frees uncounted for long. */
#define REMOTE_FLUSH_EVERY 64

struct mcache {
    /* Fast path: per size class, its two slots and the reuse stack. First,
     * so that cache_slot_offset is an offset from the cache. */
    struct class_block blocks[NUM_SIZE_CLASSES];

    /* Spans this thread owns besides the current ones (doubly linked). */
    mspan *partial[NUM_SPAN_CLASSES]; /* have free objects */
    mspan *full[NUM_SPAN_CLASSES];    /* believed full */
    uint64_t empty_bytes;             /* bytes of empty spans kept on partial
                                         (at most EMPTY_KEEP_BYTES; mcache.c
                                         file_owned_span) */

    /* Owned spans that received remote frees, pushed by the freeing
     * threads (lock-free stack), drained by the owner. */
    mspan *_Atomic notify;

    /* This thread's remote frees not yet counted in their spans (see
     * mcache_remote_pending): per span class, the span of the last one and
     * how many; remote_mask has a bit per class with an entry. Owner only,
     * except that heap_check reads them at quiescence. */
    struct remote_pending remote[NUM_SPAN_CLASSES];
    uint64_t remote_mask[(NUM_SPAN_CLASSES + 63) / 64];
    uint32_t remote_switches; /* entries replaced since the last full flush */

    mutex pcache_lock;                       /* guards pcache: the owner, or a thread
                                                flushing every cache (scavenge.c) */
    page_cache pcache;
    /* Freed large spans kept for reuse, by page count (singly linked through
     * mspan.next); guarded by pcache_lock like the page cache. */
    mspan *large_bins[LARGE_CACHE_MAX_PAGES + 1];
    uint64_t large_cached_pages; /* written under pcache_lock, read by statistics */
    uint64_t large_nmalloc, large_nfree;     /* owner only */
    uint64_t large_alloc_bytes, large_free_bytes;

    /* Cold per-class counters (see struct cache_class). */
    struct {
        uint64_t nfree;    /* frees not through the reuse stack: straight into
                              a bitmap, and remote frees made by this thread */
        uint64_t nflushed; /* reuse-stack entries given back to their spans */
    } counts[NUM_SPAN_CLASSES];

    mcache *next, *prev; /* every live cache (cache list lock) */
    uintptr_t owner_id;  /* what the free map says for spans this cache owns
                            (arena.h, struct free_entry): its thread's
                            thread_id(), or FALLBACK_OWNER_ID */
    bool fallback;       /* the shared cache of threads without one */
};
_Static_assert(offsetof(struct mcache, blocks) == 0, "cache_slot_offset counts from the cache");

/* Span class spc's slot in cache c. */
static ALWAYS_INLINE struct cache_class *cache_class_of(mcache *c, unsigned spc) {
    return (struct cache_class *)((char *)c + cache_slot_offset(spc));
}

/* The fallback cache's owner id: no thread pointer (they are aligned). */
#define FALLBACK_OWNER_ID ((uintptr_t)1)

/* The cache of every thread that has none yet (or no more): all slots point
 * to emptyspan, so the first allocation falls into the slow path. */
HIDDEN extern mcache mcache_empty;
HIDDEN extern __thread mcache *tls_cache __attribute__((tls_model("initial-exec")));

static ALWAYS_INLINE mcache *current_cache(void) { return tls_cache; }

/* Slow path of malloc of size bytes in span class spc: refill and allocate
 * one object. Returns NULL (errno ENOMEM; malloc_failed) when the heap
 * cannot grow. */
void *mcache_alloc_slow(uint8_t spc, size_t size);
/* The same for slot k of the calling thread's cache (the fast path keeps
 * no span class in a register). */
void *mcache_alloc_slot_slow(size_t size, struct cache_class *k);
/* Owner-side events of the free path. */
void mcache_free_event(mcache *c, mspan *s);
/* Free object p of owned span s when the fast path could not push it on
 * its reuse list (full, or none for the class). */
void mcache_free_local(mcache *c, mspan *s, void *p);
/* The free fast path's checks passed but the reuse stack is full (or the
 * class has none): make room and push, or free exactly (no stack). */
void mcache_free_overflow(mcache *c, mspan *s, void *p);
/* Is p on c's reuse list of span class spc? */
bool mcache_reuse_contains(mcache *c, uint8_t spc, const void *p);
uint32_t reuse_limit_of(uint8_t spc);

/* The free tag (mspan.h): word 1 of a free object of 16 bytes or more
 * holds the object's address plus FREE_TAG_OFFSET, so a second free of
 * such an object is noticed (and then verified). The tag depends on the
 * address, so a program that copies a freed object's words elsewhere (a
 * memmove over uninitialised memory, say) makes no tag at the new place;
 * and the offset is odd and large, so the tag is never a pointer into or
 * near the object, such as the self-links of an empty list head. One lea
 * makes it on the free path (an xor with a random word took a load too).
 * The tag is only a hint: a program that writes into freed memory erases
 * it, and the double free is then caught later or not at all, but the
 * allocator's own structures never live in freed objects. */
#define FREE_TAG_OFFSET ((uintptr_t)(intptr_t)-0x3A5C1E5F)
static ALWAYS_INLINE uintptr_t free_tag(uintptr_t p) { return p + FREE_TAG_OFFSET; }
static ALWAYS_INLINE bool reuse_tagged(const void *p) {
    return ((const uintptr_t *)p)[1] == free_tag((uintptr_t)p);
}
/* File s as an owned partial or full span (or release it if empty). */
void mcache_keep_full(mcache *c, mspan *s);
/* Process the notify stack: absorb remote frees of owned spans. */
void mcache_drain_notify(mcache *c);
/* A remote free by c's thread set its bit in s; its count goes into c's
 * entry for s's class (the fast path does this when s is already there). */
void mcache_remote_pending(mcache *c, mspan *s);
/* Count every entry of c (thread exit, trims, refills). */
void mcache_flush_remote(mcache *c);
static inline bool remote_any(const mcache *c) {
    uint64_t any = 0;
    for (unsigned i = 0; i < (NUM_SPAN_CLASSES + 63) / 64; i++) any |= c->remote_mask[i];
    return any != 0;
}
/* heap_check: the uncounted remote frees into s of every cache (the cache
 * list lock held, quiescent). */
uint32_t mcache_remote_pending_for(mspan *s);
/* Give the calling thread's kept empty spans back (gm_release_memory). */
void mcache_release_empty(void);
/* Hand every owned span and the page cache back (thread exit, fork). */
void mcache_release_all(mcache *c);
/* Per-thread setup on first use; thread exit. */
mcache *mcache_for_thread(void);
void mcache_thread_exit(void *arg);
/* Statistics: sum the counters of every live cache into *out (locked: the
 * caller holds the cache list lock, see mcache_fork_lock_caches). large[]:
 * mallocs, frees, bytes allocated, bytes freed, pages in the large-span
 * caches. */
void mcache_sum_stats(struct class_stats out[NUM_SIZE_CLASSES], uint64_t large[5], uint32_t *nthreads,
                      bool locked);
/* heap_check (check.c): every live cache (the caller holds the list lock),
 * and the shared cache of threads without one. */
mcache *mcache_list_locked(void);
mcache *mcache_fallback(void);
/* Fork support. */
void mcache_fork_prepare(void);
void mcache_fork_parent(void);
void mcache_fork_child(void);
void mcache_fork_lock_caches(void);
void mcache_fork_unlock_caches(void);
/* Give every thread's page cache and large-span cache back to the heap
 * (any thread). */
void mcache_flush_all_page_caches(void);
/* The large-span cache: a freed large span of up to LARGE_CACHE_MAX_PAGES
 * pages is kept by the freeing thread for its next large allocation of
 * about that size, so a loop that allocates and frees a large object never
 * touches the page allocator or the heap lock. */
mspan *mcache_large_get(mcache *c, uintptr_t npages);
bool mcache_large_put(mcache *c, mspan *s);
/* -1 if the fallback cache cannot be allocated (start-up fails). */
int mcache_init(void);

/* Statistics counters of threads that no longer have a cache, and of frees
 * made by threads without one (atomic). */
struct orphan_stats {
    _Atomic uint64_t nmalloc[NUM_SIZE_CLASSES];
    _Atomic uint64_t nfree[NUM_SIZE_CLASSES];
    _Atomic uint64_t large_nmalloc, large_nfree, large_alloc_bytes, large_free_bytes;
};
HIDDEN extern struct orphan_stats orphan_stats;

/* Frees by threads without a cache (one whose cache could not be made, one
 * past its exit, and a thread's first remote free, which gives it a cache:
 * mcache_remote_pending), counted in stripes picked by the thread's TLS
 * address: one shared counter made every such free contend for one cache
 * line with every other such thread. Summed by mcache_sum_stats. */
#define ORPHAN_STRIPES 8 /* the hash below keeps 3 bits */
struct orphan_free_stripe {
    _Atomic uint64_t nfree[NUM_SIZE_CLASSES];
} __attribute__((aligned(CACHE_LINE)));
HIDDEN extern struct orphan_free_stripe orphan_free_stripes[ORPHAN_STRIPES];
/* The calling thread's stripe: the top 3 bits of its TLS address times the
 * 64-bit golden ratio (TLS blocks are a stack size apart, so low bits
 * repeat). */
static inline unsigned orphan_stripe(void) {
    return (unsigned)(((uint64_t)(uintptr_t)&tls_cache * 0x9E3779B97F4A7C15ull) >> 61);
}

static inline void stat_add(uint64_t *counter, uint64_t n) {
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* Count a free of span class spc by thread cache c (or globally when the
 * thread has none). */
static inline void count_free(mcache *c, uint8_t spc) {
    if (c != &mcache_empty)
        stat_add(&c->counts[spc].nfree, 1);
    else
        atomic_fetch_add_explicit(&orphan_free_stripes[orphan_stripe()].nfree[spanclass_sizeclass(spc)], 1,
                                  memory_order_relaxed);
}

#endif /* GOMALLOC_MCACHE_H */

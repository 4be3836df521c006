/*
 * mspan.h: the span record and the bookkeeping of objects inside a span.
 *
 * A span is a run of pages. A small-object span is cut into nelems objects
 * of one size class; a large span holds one object. Go counterpart: mspan
 * (mheap.go) and the allocation-bitmap code of mbitmap.go.
 *
 * Objects are tracked Go's way, with bitmaps and no headers or free lists:
 *
 *   bits[2w]    allocation bits of objects 64w..64w+63 (1 = in use). Bits
 *               past nelems are permanently 1. Written by the owner only.
 *   bits[2w+1]  remote-free bits: objects freed by threads that do not own
 *               the span, set with an atomic OR and absorbed by the owner.
 *   window      the current 64-object window of a cache's current span,
 *               inverted (1 = free), so malloc is count-trailing-zeros and
 *               clear-lowest-bit (Go's allocCache; kept in the cache slot,
 *               mcache.h). Loading a window sets its allocation word to all
 *               ones: every free slot of the window is now the cache's.
 *
 * The free tag (objects of 16 bytes or more): word 1 of a free object holds
 * its address plus FREE_TAG_OFFSET (mcache.h), and malloc clears it when it hands
 * the object out. Invariant: every free object of index below span.fresh
 * carries the tag, wherever it is free (on a reuse stack, in a window, in
 * the allocation bitmap, freed remotely), and objects from fresh on have
 * never been handed out since the span was set up. Loading a window tags
 * the never-used objects it reaches and moves fresh past them. So the free
 * fast path knows an object is in use from two words it must read anyway
 * (idx < fresh, read as span.fast_fresh, and no tag), without the
 * bitmaps; the slow path decides from the bitmaps, exactly. The tag is a
 * hint in one direction only: a program that overwrites a freed object's
 * word 1 and then frees it again is caught only if the bitmaps still
 * show it free when the fast path declines; an allocated object whose
 * word 1 happens to equal its tag (its own address plus an odd constant
 * near -1 GiB, which no pointer or copied tag is) is reported as a double
 * free when another thread frees it.
 *
 * Ownership (a deliberate departure from Go, which frees by sweeping):
 * a small span is owned by at most one mcache (thread). The owner allocates
 * from it and frees into it with plain loads and stores. Any other thread's
 * free is remote: one atomic OR on the remote-free word plus one atomic add
 * on free_state. The owner absorbs remote frees when it next looks at the
 * span (collect, Go's sweep applied to free bits). Unowned spans live in
 * their mcentral (partial) or nowhere (full), and there the remote-free
 * count decides transitions: see mcentral.c.
 *
 * free_state (atomic, 64 bits):
 *   bits 0-31   count: remote frees counted and not yet absorbed, biased by
 *               2^31 (it may dip below zero for a moment: a remote thread
 *               sets its bit before it adds to the count)
 *   bit 32      NOTIFY: the span is on its owner's notify stack
 *   bits 33-35  state: DEAD, CACHED (owned), PARTIAL, FULL, LARGE
 *   bits 36-43  span class
 *   bits 44-63  generation, bumped at every change of owner, so that a
 *               thread acting on an old snapshot notices the span moved on
 */
#ifndef GOMALLOC_MSPAN_H
#define GOMALLOC_MSPAN_H

#include "internal.h"

enum span_state {
    SPAN_DEAD = 0,    /* record free or being set up */
    SPAN_CACHED = 1,  /* owned by an mcache */
    SPAN_PARTIAL = 2, /* unowned, on its mcentral's partial list */
    SPAN_FULL = 3,    /* unowned, every object allocated, on no list */
    SPAN_LARGE = 4,   /* one large object in use */
};

/* Where an owned span sits in its owner's mcache (owner only). */
enum span_place {
    PLACE_NONE = 0,
    PLACE_CURRENT = 1, /* mcache.k[spanclass].alloc */
    PLACE_PARTIAL = 2, /* mcache.partial[spanclass]: owned, has free objects */
    PLACE_FULL = 3,    /* mcache.full[spanclass]: owned, believed full */
    PLACE_CENTRAL = 4, /* unowned, on the mcentral partial list */
};

#define FS_COUNT_BIAS ((uint64_t)1 << 31)
#define FS_COUNT_MASK ((uint64_t)0xffffffff)
#define FS_NOTIFY ((uint64_t)1 << 32)
#define FS_STATE_SHIFT 33
#define FS_STATE_MASK ((uint64_t)7 << FS_STATE_SHIFT)
#define FS_CLASS_SHIFT 36
#define FS_CLASS_MASK ((uint64_t)0xff << FS_CLASS_SHIFT)
#define FS_GEN_SHIFT 44
#define FS_GEN_ONE ((uint64_t)1 << FS_GEN_SHIFT)

static inline unsigned fs_state(uint64_t v) { return (unsigned)((v & FS_STATE_MASK) >> FS_STATE_SHIFT); }
static inline int32_t fs_count(uint64_t v) { return (int32_t)((v & FS_COUNT_MASK) - FS_COUNT_BIAS); }
static inline uint8_t fs_class(uint64_t v) { return (uint8_t)((v & FS_CLASS_MASK) >> FS_CLASS_SHIFT); }
static inline uint64_t fs_gen(uint64_t v) { return v >> FS_GEN_SHIFT; }
static inline uint64_t fs_with_state(uint64_t v, unsigned st) {
    return (v & ~FS_STATE_MASK) | (uint64_t)st << FS_STATE_SHIFT;
}
/* A fresh word for a new owner epoch: same generation + 1, zero count. */
static inline uint64_t fs_new_epoch(uint64_t old, unsigned st, uint8_t spanclass) {
    return ((old & ~((uint64_t)FS_GEN_ONE - 1)) + FS_GEN_ONE) | (uint64_t)spanclass << FS_CLASS_SHIFT |
           (uint64_t)st << FS_STATE_SHIFT | FS_COUNT_BIAS;
}

/* Field order follows the paths: the first cache line holds what only the
 * slow paths use; the second what a free reads (an owner's free reads its
 * copy in the arena's free map instead: arena.h, span_set_owner), followed
 * by the bitmaps, so that for spans of up to 64 objects one line serves a
 * remote free entirely. Records are 64-byte aligned (mheap.c). The allocation window
 * (Go's allocCache) is not here: only a cache's current span has one, and it
 * lives in that cache's slot (mcache.h), next to what malloc reads. */
struct mspan {
    /* ---- Line 0: slow paths. ---- */
    uintptr_t elemsize;        /* object size; npages * PAGE_SIZE for large spans.
                                  First: a free record's first word links the
                                  fixalloc free list, and free_state must
                                  survive (its generation) */
    _Atomic uint64_t free_state; /* see the header comment */
    uintptr_t npages;
    uintptr_t limit;           /* base + nelems * elemsize */
    mspan *next, *prev;        /* owner's partial/full list or the mcentral partial list */
    mspan *_Atomic notify_next;/* link on the owner's notify stack */
    uint32_t alloc_count;      /* live objects of an unowned span, at its release.
                                  Written under the mcentral lock before the state
                                  CAS that publishes it (or at record setup); a
                                  remote free reads it after its own CAS, possibly
                                  after the record was reused (a later generation,
                                  which mcentral_remote_transition rejects): relaxed
                                  atomic accesses there */
    uint8_t needzero;          /* objects handed out may hold old data */
    uint8_t nwords;            /* 64-bit words per bitmap */
    uint8_t record_kind;       /* which record allocator this came from */
    uint8_t place;             /* enum span_place (owner, or mcentral lock) */

    /* ---- Line 1: the free paths, then the bitmaps. ---- */
    mcache *_Atomic owner;     /* owning mcache or NULL; changed by the owner, or
                                  under the mcentral lock when unowned, and
                                  (record setup aside) only through
                                  span_set_owner */
    uintptr_t base;            /* first byte of the span */
    uint64_t div_inv;          /* inverse of elemsize's odd factor mod 2^64
                                  (span_exact_index) */
    uintptr_t fast_fresh;      /* fresh if frees of this class may take the fast
                                  path (it has a tag word and reuse stacks),
                                  else 0; owner (tag_fresh keeps the free map's
                                  copy equal) */
    uint32_t div_mul;          /* offset * div_mul >> 32 == offset / elemsize */
    uint16_t nelems;           /* objects in the span */
    uint8_t spanclass;
    uint8_t div_shift;         /* log2 of elemsize's power-of-two factor */
    uint32_t countdown;        /* owner: bitmap frees until mcache_free_event must
                                  file the span again (see mcache.c);
                                  COUNTDOWN_EMPTY: a kept empty span */
    uint16_t fresh;            /* objects from here on were never handed out and
                                  carry no tag (see the header comment); owner */

    /* Interleaved bitmaps: bits[2w] allocation word w, bits[2w+1] remote-free
     * word w. Sized by the record kind (mheap.c). */
    _Atomic uint64_t bits[];
};

_Static_assert(offsetof(struct mspan, owner) == 64, "the free path's fields start the second line");
_Static_assert(offsetof(struct mspan, free_state) != 0, "fixalloc links free records through word 0");
_Static_assert(offsetof(struct mspan, bits) == 112, "a bitmap word pair shares that line");

/* Relaxed accessors: the owner writes allocation words with plain stores
 * that remote threads may read (for double-free checks). */
static ALWAYS_INLINE uint64_t span_alloc_word(mspan *s, unsigned w) {
    return atomic_load_explicit(&s->bits[2 * w], memory_order_relaxed);
}
static ALWAYS_INLINE void span_set_alloc_word(mspan *s, unsigned w, uint64_t v) {
    atomic_store_explicit(&s->bits[2 * w], v, memory_order_relaxed);
}
static ALWAYS_INLINE uint64_t span_remote_word(mspan *s, unsigned w) {
    return atomic_load_explicit(&s->bits[2 * w + 1], memory_order_relaxed);
}
static ALWAYS_INLINE mcache *span_owner(mspan *s) {
    return atomic_load_explicit(&s->owner, memory_order_relaxed);
}
/* Make c (NULL: nobody) the owner of small span s: the record and the
 * free-map entries of its pages (arena.h, struct free_entry). Called by
 * the cache that takes or gives up s, or by the only thread (fork child). */
void span_set_owner(mspan *s, mcache *c);

static inline uint64_t span_free_state(mspan *s) {
    return atomic_load_explicit(&s->free_state, memory_order_acquire);
}

/* The index of the object that starts at p, if p is an object start of s;
 * otherwise a number above 2^32. (p - base) times the inverse of elemsize's
 * odd factor is exact modulo 2^64 when elemsize divides the offset, and
 * otherwise lands above 2^64 / odd factor (the Granlund-Montgomery
 * divisibility test); rotating right by the power-of-two factor moves any
 * remainder bits to the top. One multiply and one compare against fresh
 * then check "object start" and "handed out" together, for any 64-bit p
 * whose page maps to s (also p past the last object, or p with high bits
 * that the arena index ignored). */
static ALWAYS_INLINE uint64_t exact_index(uintptr_t base, uint64_t div_inv, unsigned div_shift, uintptr_t p) {
    uint64_t x = (uint64_t)(p - base) * div_inv;
    return (x >> div_shift) | (x << ((64 - div_shift) & 63));
}
static ALWAYS_INLINE uint64_t span_exact_index(const mspan *s, uintptr_t p) {
    return exact_index(s->base, s->div_inv, s->div_shift, p);
}

/* Object index of an offset into the span (Go: divideByElemSize). */
static ALWAYS_INLINE uintptr_t span_object_index(mspan *s, uintptr_t off) {
    return (uintptr_t)(((uint64_t)off * s->div_mul) >> 32);
}

HIDDEN extern mspan emptyspan; /* the sentinel every empty mcache slot points to */

struct cache_class;

static inline unsigned popcount64(uint64_t x) { return (unsigned)__builtin_popcountll(x); }

/* The bits of allocation word w that lie past nelems (the tail of the last
 * word): permanently "in use". */
static inline uint64_t tail_bits(unsigned nelems, unsigned w) {
    unsigned first = w * 64;
    if (nelems >= first + 64) return 0;
    if (nelems <= first) return ~(uint64_t)0;
    return ~(uint64_t)0 << (nelems - first);
}

/* mspan.c: owner-side operations. The window functions make s the current
 * span of cache slot k. */
void span_init_small(mspan *s, uint8_t spanclass, uintptr_t base, uintptr_t npages, bool needzero);
void span_init_large(mspan *s, uint8_t spanclass, uintptr_t base, uintptr_t npages, bool needzero);
bool span_next_window(struct cache_class *k, mspan *s);
bool span_rescan(struct cache_class *k, mspan *s);
void span_first_window(struct cache_class *k, mspan *s);
bool span_random_window(struct cache_class *k, mspan *s);
/* Absorb remote frees; window: the free slots of word window_word when s is
 * a current span (its allocation word claims them). */
uint32_t span_absorb_remote(mspan *s, unsigned window_word, uint64_t window);
/* s stops being k's current span: the window's free slots go back. */
void span_uncache_window(struct cache_class *k, mspan *s);
uint32_t span_live_objects(mspan *s);
void span_free_remote(mspan *s, uintptr_t p, uintptr_t idx, mcache *c, const char *op);
/* Add n remote frees of s (bits already set) to its free_state count, and
 * tell its owner or mcentral (any thread; no lock held). */
void span_count_remote(mspan *s, uint32_t n);
uintptr_t span_object_at(mspan *s, unsigned idx);
void span_check(mspan *s);

#endif /* GOMALLOC_MSPAN_H */

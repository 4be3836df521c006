/*
 * Unit tests of spans, thread caches and mcentral (src/mspan.c, mcache.c,
 * mcentral.c) and of the malloc.c paths, through the gm_ API with a look at
 * the internal state: allocation order within a span, local reuse, remote
 * frees and the notify stack, spans handed back at thread exit and adopted
 * again, unowned-span transitions, large objects, misuse detection, and the
 * statistics identities, and the free map following span ownership
 * (also across fork).
 */
#include "testlib.h"

#include <pthread.h>

#include "arena.h"
#include "check.h"
#include "malloc.h"
#include "mcentral.h"
#include "mheap.h"
#include "options.h"
#include "stats.h"

static mspan *span_of_ptr(void *p) { return span_lookup((uintptr_t)p); }

/* The statistics identities, and (every caller runs with no other thread
 * alive) the whole-heap invariant check. */
static int identities_hold(void) {
    struct gm_memstats st;
    char why[512];
    gm_read_memstats(&st);
    CHECKR(stats_check_identities(&st, why, sizeof why) == 0, "%s", why);
    CHECKR(heap_check(HEAP_CHECK_QUIESCENT, why, sizeof why) == 0, "%s", why);
    return 1;
}

/* Run fn in a fresh thread (a fresh cache). */
static void in_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    pthread_create(&t, NULL, fn, arg);
    pthread_join(t, NULL);
}

struct fill { size_t size; void **out; size_t n; };

static void *fill_thread(void *arg) {
    struct fill *f = arg;
    for (size_t i = 0; i < f->n; i++) f->out[i] = gm_malloc(f->size);
    return NULL;
}

TEST(fresh_span_fills_in_address_order) {
    static void *p[2000];
    struct fill f = {100, p, 0};
    unsigned cls = spanclass_sizeclass(small_spanclass(100));
    f.n = class_to_nelems[cls];
    in_thread(fill_thread, &f); /* the thread exits; its span is handed back */
    mspan *s = span_of_ptr(p[0]);
    for (size_t i = 0; i < f.n; i++) {
        CHECKF(span_of_ptr(p[i]) == s, "object %zu in another span", i);
        CHECKF((uintptr_t)p[i] == s->base + i * s->elemsize, "object %zu at %p", i, p[i]);
    }
    CHECK(s->needzero == 0 || s->needzero == 1);
    /* the owner exited with every object alive: the span is unowned and full */
    uint64_t v = span_free_state(s);
    CHECKF(fs_state(v) == SPAN_FULL, "state %u", fs_state(v));
    CHECK(span_owner(s) == NULL);
    /* the first remote free, once counted, moves it to the partial list;
     * the last frees it. This thread holds its counts back until it
     * flushes (mcache_remote_pending). */
    uint64_t inuse0 = mheap_.pages_inuse;
    gm_free(p[0]);
    mcache *c = current_cache();
    CHECK(c != &mcache_empty && c->remote[s->spanclass].span == s && c->remote[s->spanclass].n == 1);
    CHECKF(fs_state(span_free_state(s)) == SPAN_FULL, "state %u before the count", fs_state(span_free_state(s)));
    mcache_flush_remote(c);
    CHECKF(fs_state(span_free_state(s)) == SPAN_PARTIAL, "state %u", fs_state(span_free_state(s)));
    CHECK(!remote_any(c));
    for (size_t i = 1; i < f.n; i++) gm_free(p[i]);
    CHECKF(fs_state(span_free_state(s)) == SPAN_PARTIAL, "state %u before the count", fs_state(span_free_state(s)));
    mcache_flush_remote(c);
    CHECKF(mheap_.pages_inuse == inuse0 - s->npages || fs_state(span_free_state(s)) != SPAN_PARTIAL,
           "span not returned: inuse %lu -> %lu", (unsigned long)inuse0, (unsigned long)mheap_.pages_inuse);
    CHECK(identities_hold());
}

TEST(local_frees_reuse_list_then_bitmap) {
    size_t size = 48;
    uint8_t spc = small_spanclass(size);
    size_t n = class_to_nelems[spanclass_sizeclass(spc)];
    gm_free(gm_malloc(size)); /* this thread has a cache from here on */
    uint32_t limit = cache_class_of(current_cache(), spc)->reuse_end / (uint32_t)sizeof(void *);
    CHECK(limit > 0 && limit < n);
    static void *p[4096];
    /* take whatever is left of the current span, then a whole fresh one */
    mspan *first = NULL;
    size_t k = 0;
    for (;;) {
        p[k] = gm_malloc(size);
        if (!first) first = span_of_ptr(p[k]);
        if (span_of_ptr(p[k]) != first) break;
        k++;
    }
    mspan *s = span_of_ptr(p[k]);
    size_t start = k;
    for (size_t i = 1; i < n; i++) p[start + i] = gm_malloc(size);
    for (size_t i = 0; i < n; i++) CHECK(span_of_ptr(p[start + i]) == s);
    CHECK(cache_class_of(current_cache(), spc)->window == 0);
    /* a few frees go on the reuse list and come back last-in, first-out */
    size_t before = reuse_depth(cache_class_of(current_cache(), spc));
    CHECK(before == 0);
    for (size_t i = 0; i < 9; i += 3) gm_free(p[start + i]);
    CHECK(reuse_depth(cache_class_of(current_cache(), spc)) == 3);
    for (int i = 6; i >= 0; i -= 3) {
        void *q = gm_malloc(size);
        CHECKF(q == p[start + (size_t)i], "reuse: got %p want %p", q, p[start + (size_t)i]);
    }
    CHECK(reuse_depth(cache_class_of(current_cache(), spc)) == 0);
    /* past the list's capacity, objects go back to the span's bitmap and
     * are found again, in address order, when the span is rescanned */
    for (size_t i = 0; i < n; i++) gm_free(p[start + i]);
    size_t on_list = reuse_depth(cache_class_of(current_cache(), spc));
    CHECKF(on_list >= 1 && on_list <= limit, "%zu on the list", on_list);
    size_t in_bitmap = n - on_list;
    for (size_t i = 0; i < on_list; i++) {
        void *q = gm_malloc(size);
        CHECK(span_of_ptr(q) == s);
    }
    void *prev = NULL;
    for (size_t i = 0; i < in_bitmap; i++) {
        void *q = gm_malloc(size);
        CHECKF(span_of_ptr(q) == s, "object %zu from another span", i);
        CHECKF(!prev || q > prev, "not in address order: %p after %p", q, prev);
        prev = q;
        p[start + i] = q;
    }
    CHECK(s->needzero == 1);
    /* calloc of recycled memory is zero */
    gm_free(p[start]);
    memset(p[start], 0xee, size); /* scribble on freed memory, as a buggy program would */
    char *z = gm_calloc(1, size);
    CHECK((void *)z == p[start]);
    for (size_t i = 0; i < size; i++) CHECKF(z[i] == 0, "calloc byte %zu", i);
    for (size_t i = 0; i < start; i++) gm_free(p[i]);
    CHECK(identities_hold());
}

struct remote { void **objs; size_t n; };

static void *free_all_thread(void *arg) {
    struct remote *r = arg;
    for (size_t i = 0; i < r->n; i++) gm_free(r->objs[i]);
    return NULL;
}

TEST(remote_frees_come_back_to_the_owner) {
    static void *p[20000];
    size_t n = 20000, size = 200;
    for (size_t i = 0; i < n; i++) {
        p[i] = gm_malloc(size);
        memset(p[i], (int)i, size);
    }
    mcache *c = current_cache();
    uint64_t inuse = mheap_.pages_inuse;
    struct remote r = {p, n};
    in_thread(free_all_thread, &r);
    /* the owner has been told: the notify stack holds its spans */
    CHECK(atomic_load(&c->notify) != NULL);
    /* reallocating the same amount needs no new pages */
    for (size_t i = 0; i < n; i++) p[i] = gm_malloc(size);
    CHECKF(mheap_.pages_inuse <= inuse, "pages in use grew from %lu to %lu", (unsigned long)inuse,
           (unsigned long)mheap_.pages_inuse);
    for (size_t i = 0; i < n; i++) gm_free(p[i]);
    CHECK(identities_hold());
}

/* An owner that allocates, then waits (owning its spans) until told to go. */
struct held { void **objs; size_t n, size; pthread_barrier_t bar; };

static void *hold_owner(void *arg) {
    struct held *h = arg;
    for (size_t i = 0; i < h->n; i++) h->objs[i] = gm_malloc(h->size);
    pthread_barrier_wait(&h->bar); /* allocated */
    pthread_barrier_wait(&h->bar); /* the others are done */
    for (size_t i = 0; i < h->n; i++) gm_free(h->objs[i]);
    return NULL;
}

static uint32_t remote_bits(mspan *s) {
    uint32_t n = 0;
    for (unsigned w = 0; w < s->nwords; w++) n += (uint32_t)__builtin_popcountll(span_remote_word(s, w));
    return n;
}

static void *free_only_thread(void *arg) {
    struct remote *r = arg;
    for (size_t i = 0; i < r->n; i++) gm_free(r->objs[i]);
    /* a thread that never allocated got a cache to hold its counts */
    return (void *)(uintptr_t)(current_cache() != &mcache_empty);
}

/* Remote frees set their bit at once and are counted in batches
 * (mcache_remote_pending): per class, one span's uncounted frees, counted
 * at an eighth of the span, on a change of span, on gm_release_memory and
 * at thread exit. */
TEST(remote_free_counts_are_batched) {
    static void *objs[1024];
    struct held h = {.objs = objs, .n = 1024, .size = 64};
    pthread_barrier_init(&h.bar, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, hold_owner, &h);
    pthread_barrier_wait(&h.bar);
    gm_free(gm_malloc(64)); /* this thread has a cache */
    mcache *c = current_cache();
    mcache_flush_remote(c);
    mspan *s = span_of_ptr(objs[0]);
    uint8_t spc = s->spanclass;
    CHECK(span_owner(s) != c && span_owner(s) != NULL);
    uint32_t limit = remote_limit(s);
    CHECKF(limit == s->nelems / 8 && limit >= 4 && limit + 1 < s->nelems, "limit %u of %u", limit, s->nelems);
    int32_t count0 = fs_count(span_free_state(s));
    for (uint32_t i = 0; i < limit; i++) gm_free(objs[i]);
    /* every bit set, nothing counted yet, the owner not told */
    CHECKF(remote_bits(s) == limit, "%u remote bits", remote_bits(s));
    CHECKF(fs_count(span_free_state(s)) == count0, "count %d", fs_count(span_free_state(s)));
    CHECK(!(span_free_state(s) & FS_NOTIFY));
    CHECK(c->remote[spc].span == s && c->remote[spc].n == limit && remote_any(c));
    CHECK(identities_hold()); /* heap_check adds the held counts */
    /* the next free finds the entry full: the batch is counted */
    gm_free(objs[limit]);
    CHECKF(fs_count(span_free_state(s)) == count0 + (int32_t)limit, "count %d", fs_count(span_free_state(s)));
    CHECK(span_free_state(s) & FS_NOTIFY); /* the owner is told */
    CHECK(c->remote[spc].span == s && c->remote[spc].n == 1);
    /* a free into another span of the class counts the rest */
    size_t other = 0;
    while (other < h.n && span_of_ptr(objs[other]) == s) other++;
    CHECK(other < h.n);
    gm_free(objs[other]);
    CHECKF(fs_count(span_free_state(s)) == count0 + (int32_t)limit + 1, "count %d", fs_count(span_free_state(s)));
    CHECK(c->remote[spc].span == span_of_ptr(objs[other]) && c->remote[spc].n == 1);
    CHECK(identities_hold());
    /* gm_release_memory counts everything */
    gm_release_memory();
    CHECK(!remote_any(c) && c->remote[spc].span == NULL);
    CHECK(identities_hold());
    /* a thread that only frees: counted by its exit at the latest */
    struct remote r = {objs + limit + 1, other - limit - 1};
    pthread_t f;
    void *had_cache = NULL;
    pthread_create(&f, NULL, free_only_thread, &r);
    pthread_join(f, &had_cache);
    CHECK(had_cache == (void *)1);
    /* (the owner is parked: it absorbed nothing) */
    CHECKF(fs_count(span_free_state(s)) == (int32_t)remote_bits(s), "count %d, bits %u", fs_count(span_free_state(s)),
           remote_bits(s));
    CHECK(identities_hold());
    /* the owner frees the rest and exits: everything returns */
    for (size_t i = 0; i <= other; i++) objs[i] = NULL;
    pthread_barrier_wait(&h.bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&h.bar);
    gm_release_memory();
    CHECK(identities_hold());
}

static void *alloc_and_exit(void *arg) {
    struct remote *r = arg;
    for (size_t i = 0; i < r->n; i++) r->objs[i] = gm_malloc(16 + (i % 50) * 16);
    return NULL;
}

TEST(exited_threads_hand_spans_back) {
    static void *p[50000];
    struct remote r = {p, 50000};
    struct gm_memstats before, mid, after;
    gm_read_memstats(&before);
    in_thread(alloc_and_exit, &r);
    gm_read_memstats(&mid);
    CHECK(mid.heap_objects >= before.heap_objects + 50000);
    /* every span of the exited thread is unowned now */
    for (size_t i = 0; i < r.n; i += 97) {
        mspan *s = span_of_ptr(p[i]);
        CHECK(span_owner(s) != current_cache());
        unsigned st = fs_state(span_free_state(s));
        CHECKF(st == SPAN_FULL || st == SPAN_PARTIAL || st == SPAN_CACHED, "state %u", st);
    }
    for (size_t i = 0; i < r.n; i++) gm_free(p[i]);
    gm_read_memstats(&after);
    CHECKF(after.heap_objects <= before.heap_objects + 64, "objects %lu -> %lu", (unsigned long)before.heap_objects,
           (unsigned long)after.heap_objects);
    CHECKF(after.heap_inuse <= before.heap_inuse + 64 * PAGE_SIZE, "heap in use %lu -> %lu",
           (unsigned long)before.heap_inuse, (unsigned long)after.heap_inuse);
    CHECK(identities_hold());
}

/* The free map (arena.h): an owner's pages name it, with the span's
 * constants, and name nobody once it gives the span up; in a fork child a
 * dead thread's name is gone from every page, also from pages of a span
 * it was taking when the parent forked. */
struct fm_owner {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
    void *obj;
    mcache *cache;
};
static void fm_stage(struct fm_owner *o, int stage, bool wait) {
    pthread_mutex_lock(&o->mu);
    if (wait)
        while (o->stage < stage) pthread_cond_wait(&o->cv, &o->mu);
    else {
        o->stage = stage;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
}
static void *fm_thread(void *arg) {
    struct fm_owner *o = arg;
    o->obj = gm_malloc(48);
    o->cache = current_cache();
    fm_stage(o, 1, false);
    fm_stage(o, 2, true);
    return NULL;
}
static const struct free_entry *fm_entry(const void *p) { return free_entry_of((uintptr_t)p); }
static void *fm_large;
static mcache *fm_dead;
static void fm_child(void *arg) {
    (void)arg;
    char why[512];
    if (free_entry_owner(fm_entry(fm_large)) != 0) {
        fprintf(stderr, "large object's page still names %p", (void *)fm_dead);
        _exit(1);
    }
    if (heap_check(HEAP_CHECK_QUIESCENT, why, sizeof why) != 0) {
        fprintf(stderr, "%s", why);
        _exit(1);
    }
}
TEST(free_map_follows_ownership) {
    void *p = gm_malloc(48);
    mspan *s = span_of_ptr(p);
    for (uintptr_t i = 0; i < s->npages; i++) {
        const struct free_entry *e = fm_entry((void *)(s->base + i * PAGE_SIZE));
        CHECK(free_entry_owner(e) == thread_id() && current_cache()->owner_id == thread_id());
        CHECK(e->base == (uint32_t)s->base && e->mult == free_index_mult(s->div_inv, s->div_shift) &&
              e->slot == cache_class_of(current_cache(), s->spanclass) && e->spanclass == s->spanclass &&
              e->fast_fresh == s->fast_fresh);
    }
    gm_free(p);

    struct fm_owner o = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL, NULL};
    pthread_t t;
    pthread_create(&t, NULL, fm_thread, &o);
    fm_stage(&o, 1, true);
    CHECK(free_entry_owner(fm_entry(o.obj)) == o.cache->owner_id && o.cache != current_cache() &&
          o.cache->owner_id != thread_id());
    /* as if o's thread were writing a new span's entries when we fork */
    fm_large = gm_malloc(300 << 10);
    fm_dead = o.cache;
    struct free_entry *e = (struct free_entry *)fm_entry(fm_large);
    atomic_store(&e->owner, o.cache->owner_id);
    char err[1024];
    int st = tl_run_child(fm_child, NULL, err, sizeof err, 30);
    atomic_store(&e->owner, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %#x: %s", st, err);
    fm_stage(&o, 2, false);
    pthread_join(t, NULL);
    CHECK(free_entry_owner(fm_entry(o.obj)) == 0); /* handed back at exit */
    gm_free(o.obj);
    gm_free(fm_large);
    CHECK(identities_hold());
}

TEST(large_objects) {
    size_t sizes[] = {32769, 65536, 100000, 1 << 20, 5 << 20, (64 << 20) + 12345};
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = gm_malloc(sizes[i]);
        CHECK(p && (uintptr_t)p % PAGE_SIZE == 0);
        CHECK(gm_usable_size(p) == round_up(sizes[i], PAGE_SIZE));
        memset(p, 7, sizes[i]);
        mspan *s = span_of_ptr(p);
        CHECK(s && s->base == (uintptr_t)p && fs_state(span_free_state(s)) == SPAN_LARGE);
        /* every page maps to the span, so interior pointers are recognised */
        CHECK(span_of_ptr(p + sizes[i] - 1) == s);
        gm_free(p);
        CHECK(fs_state(span_free_state(s)) != SPAN_LARGE || s->base != (uintptr_t)p);
    }
    /* calloc of fresh large memory needs no memset but is zero */
    for (int k = 0; k < 20; k++) {
        char *z = gm_calloc(1, 300000);
        CHECK(z);
        for (size_t i = 0; i < 300000; i += 4096) CHECKF(z[i] == 0, "calloc large byte %zu", i);
        memset(z, 1, 300000);
        gm_free(z);
    }
    /* realloc grows in place when the next pages are free, shrinks in place */
    char *a = gm_malloc(40000);
    memset(a, 3, 40000);
    char *b = gm_realloc(a, 300000);
    CHECK(b);
    for (size_t i = 0; i < 40000; i++) CHECKF(b[i] == 3, "realloc lost byte %zu", i);
    char *c2 = gm_realloc(b, 50000);
    CHECK(c2 == b && gm_usable_size(c2) == round_up(50000, PAGE_SIZE));
    gm_free(c2);
    CHECK(identities_hold());
}

TEST(aligned_allocations) {
    for (size_t al = 1; al <= (4u << 20); al <<= 1) {
        size_t sizes[] = {1, 8, 24, 100, 4096, 5000, 40000};
        for (unsigned i = 0; i < 7; i++) {
            void *p = gm_aligned_alloc(al, sizes[i]);
            CHECKF(p && (uintptr_t)p % al == 0, "aligned_alloc(%zu, %zu) = %p", al, sizes[i], p);
            CHECK(gm_usable_size(p) >= sizes[i]);
            memset(p, 1, sizes[i]);
            gm_free_aligned_sized(p, al, sizes[i]);
        }
    }
    void *p;
    CHECK(gm_posix_memalign(&p, 24, 10) == EINVAL);
    CHECK(gm_posix_memalign(&p, 2, 10) == EINVAL);
    errno = 0;
    CHECK(gm_aligned_alloc(3, 10) == NULL && errno == EINVAL);
}

/* ---- misuse (each in a child, since the default is abort) ---------------- */

static void double_free_local(void *arg) {
    (void)arg;
    void *p = gm_malloc(64);
    gm_free(p);
    gm_free(p);
}
static void double_free_remote_thread_body(void *p) { gm_free(p); }
static void *df_thread(void *p) {
    double_free_remote_thread_body(p);
    return NULL;
}
static void double_free_cross(void *arg) {
    (void)arg;
    void *p = gm_malloc(64);
    in_thread(df_thread, p);
    gm_free(p);
}
static void free_stack(void *arg) {
    (void)arg;
    int x;
    gm_free(&x);
}
static void free_interior(void *arg) {
    (void)arg;
    char *p = gm_malloc(100);
    gm_free(p + 16);
}
static void free_large_twice(void *arg) {
    (void)arg;
    void *p = gm_malloc(100000);
    gm_free(p);
    gm_free(p);
}
static void warn_mode(void *arg) {
    (void)arg;
    options.on_error_warn = 1;
    void *p = gm_malloc(64);
    gm_free(p);
    errno = 77;
    gm_free(p);
    if (errno != 77) _exit(5);
    _exit(0);
}

static int misuse_case(void (*fn)(void *), const char *want) {
    char err[512];
    int status = tl_run_child(fn, NULL, err, sizeof err, 10);
    CHECKR(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, stderr: %s", status, err);
    CHECKR(strstr(err, "gomalloc: free(0x") && strstr(err, want), "stderr: %s", err);
    return 1;
}

TEST(misuse_is_reported) {
    CHECK(misuse_case(double_free_local, "double free"));
    CHECK(misuse_case(double_free_cross, "double free"));
    CHECK(misuse_case(free_stack, "not allocated by gomalloc"));
    CHECK(misuse_case(free_interior, "interior pointer"));
    CHECK(misuse_case(free_large_twice, "double free"));
    char err[512];
    int status = tl_run_child(warn_mode, NULL, err, sizeof err, 10);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "warn mode status %#x: %s", status, err);
    CHECKF(strstr(err, "double free") && strstr(err, "(ignored)"), "stderr: %s", err);
}

/* ---- The free tag (mspan.h) ---- */

static int tagged(void *p) { return ((uintptr_t *)p)[1] == free_tag((uintptr_t)p); }

struct tag_case { void *objs[400]; mspan *span; int ok; };

static void *remote_free_thread(void *arg) {
    void **p = arg;
    gm_free(*p);
    return NULL;
}

static void *tag_thread(void *arg) {
    struct tag_case *t = arg;
    t->ok = 0;
    /* a fresh thread: its first 48-byte object comes from a fresh span */
    char *p0 = gm_malloc(48);
    mspan *s = span_of_ptr(p0);
    t->span = s;
    CHECKR(s->base == (uintptr_t)p0 && s->nelems > 128, "not a fresh span (%u objects)", s->nelems);
    CHECKR(s->fresh == 64, "fresh %u after the first window", s->fresh);
    CHECKR(((uintptr_t *)p0)[1] == 0, "handed out with its tag");
    for (unsigned i = 1; i < 64; i++) /* the rest of the window: free, tagged */
        CHECKR(tagged((void *)span_object_at(s, i)), "window object %u untagged", i);
    /* handed out objects are untagged; freed ones tagged, also once they
     * leave the reuse stack for the bitmap */
    t->objs[0] = p0;
    for (unsigned i = 1; i < 160; i++) {
        t->objs[i] = gm_malloc(48);
        CHECKR(!tagged(t->objs[i]), "object %u handed out tagged", i);
    }
    CHECKR(s->fresh == s->nelems || s->fresh >= 160, "fresh %u", s->fresh);
    for (unsigned i = 0; i < 150; i++) gm_free(t->objs[i]);
    struct cache_class *k = cache_class_of(current_cache(), s->spanclass);
    CHECKR(reuse_depth(k) < 150, "nothing was flushed to the bitmap (%u on the stack)", reuse_depth(k));
    for (unsigned i = 0; i < 150; i++) CHECKR(tagged(t->objs[i]), "freed object %u untagged", i);
    /* a remote free tags too */
    pthread_t th;
    pthread_create(&th, NULL, remote_free_thread, &t->objs[155]);
    pthread_join(th, NULL);
    CHECKR(tagged(t->objs[155]), "remotely freed object untagged");
    t->ok = 1;
    return NULL;
}

static void double_free_after_flush(void *arg) {
    (void)arg;
    void *p[200];
    for (int i = 0; i < 200; i++) p[i] = gm_malloc(48);
    for (int i = 0; i < 200; i++) gm_free(p[i]); /* the first ones are flushed to the bitmap */
    gm_free(p[0]);
}

/* In the child: allocate 48-byte objects until the current span has slots
 * nobody was given (index >= fresh) and its window has free ones. */
static mspan *span_with_fresh_slots(void) {
    for (int i = 0; i < 100000; i++) {
        mspan *s = span_lookup((uintptr_t)gm_malloc(48));
        struct cache_class *k = cache_class_of(current_cache(), s->spanclass);
        if (s->fresh < s->nelems && k->alloc == s && __builtin_popcountll(k->window) >= 2) return s;
    }
    _exit(7);
}

static void free_never_handed_out(void *arg) {
    (void)arg;
    mspan *s = span_with_fresh_slots();
    gm_free((void *)span_object_at(s, s->fresh)); /* a slot nobody was given */
}

static void free_window_object(void *arg) {
    (void)arg;
    mspan *s = span_with_fresh_slots();
    struct cache_class *k = cache_class_of(current_cache(), s->spanclass);
    unsigned top = 63 - (unsigned)__builtin_clzll(k->window); /* in the window: free, tagged */
    gm_free((void *)(k->window_base + top * s->elemsize));
}

TEST(free_tag_invariant) {
    static struct tag_case t;
    in_thread(tag_thread, &t);
    CHECK(t.ok);
    for (unsigned i = 150; i < 160; i++)
        if (i != 155) gm_free(t.objs[i]);
    CHECK(misuse_case(double_free_after_flush, "double free"));
    CHECK(misuse_case(free_never_handed_out, "gomalloc: free(0x"));
    CHECK(misuse_case(free_window_object, "gomalloc: free(0x"));
    CHECK(identities_hold());
}

static void *large_cache_thread(void *arg) {
    /* a thread that exits with spans in its large cache hands them back */
    for (int i = 0; i < 4; i++) gm_free(gm_malloc(200000 + (size_t)i * PAGE_SIZE));
    *(uint64_t *)arg = current_cache()->large_cached_pages;
    return NULL;
}

TEST(large_span_cache) {
    mcache *c = current_cache();
    gm_release_memory(); /* start with empty caches */
    CHECK(c->large_cached_pages == 0);
    /* a freed large object is kept by the thread and reused at once */
    char *p = gm_malloc(100000);
    mspan *s = span_of_ptr(p);
    memset(p, 5, 100000);
    gm_free(p);
    CHECKF(c->large_cached_pages == s->npages, "cached %lu pages", (unsigned long)c->large_cached_pages);
    CHECK(fs_state(span_free_state(s)) == SPAN_DEAD);
    struct gm_memstats st;
    gm_read_memstats(&st);
    CHECK(identities_hold());
    uint64_t idle_with = st.heap_idle;
    /* the same size, and a slightly smaller one, get the cached span */
    char *q = gm_malloc(100000);
    CHECK(q == p && span_of_ptr(q) == s && fs_state(span_free_state(s)) == SPAN_LARGE);
    CHECK(c->large_cached_pages == 0);
    gm_free(q);
    char *r = gm_calloc(1, 100000 - PAGE_SIZE);
    CHECK(r == p && gm_usable_size(r) == round_up(100000 - PAGE_SIZE, PAGE_SIZE)); /* trimmed to size */
    for (size_t i = 0; i < 100000 - PAGE_SIZE; i += 511) CHECKF(r[i] == 0, "calloc from the cache: byte %zu", i);
    gm_free(r);
    /* a double free of an object whose span is cached is still reported */
    CHECK(misuse_case(free_large_twice, "double free"));
    /* too large to cache: straight back to the heap */
    char *big = gm_malloc((LARGE_CACHE_MAX_PAGES + 1) * PAGE_SIZE);
    uint64_t before = c->large_cached_pages;
    gm_free(big);
    CHECK(c->large_cached_pages == before);
    /* at most LARGE_CACHE_LIMIT_PAGES per thread */
    void *many[64];
    for (int i = 0; i < 64; i++) many[i] = gm_malloc(40 * PAGE_SIZE);
    for (int i = 0; i < 64; i++) gm_free(many[i]);
    CHECKF(c->large_cached_pages <= LARGE_CACHE_LIMIT_PAGES, "cached %lu", (unsigned long)c->large_cached_pages);
    CHECK(identities_hold());
    /* gm_release_memory empties every cache; the pages count as idle, then released */
    gm_release_memory();
    CHECK(c->large_cached_pages == 0);
    gm_read_memstats(&st);
    CHECK(st.heap_idle >= idle_with - 2 * LARGE_CACHE_LIMIT_PAGES * PAGE_SIZE);
    CHECK(identities_hold());
    gm_read_memstats(&st);
    uint64_t inuse_before = st.heap_inuse, exited = 0;
    in_thread(large_cache_thread, &exited);
    CHECKF(exited > 0, "the thread cached nothing");
    gm_read_memstats(&st);
    CHECKF(st.heap_inuse <= inuse_before + 16 * PAGE_SIZE, "heap in use %lu -> %lu after the thread exited",
           (unsigned long)inuse_before, (unsigned long)st.heap_inuse);
    CHECK(identities_hold());
}

TEST(stats_identities_after_threads) {
    CHECK(identities_hold());
    struct gm_memstats st;
    gm_read_memstats(&st);
    CHECK(st.sys == st.os_ready + st.os_prepared);
    CHECK(st.mallocs >= st.frees);
}

TEST_MAIN()

/*
 * Unit tests of the heap invariant checker (src/check.c): heap_check passes
 * on heaps in many shapes (fresh, after every kind of allocation, with
 * remote frees pending on notify stacks, spans handed back by exited
 * threads, page caches, scavenged memory, a memory limit), its locked mode
 * passes while other threads allocate, and each kind of corruption of the
 * metadata (bitmaps, counts, lists, summaries, counters, arena index, free
 * map) is reported, in a forked child so the real heap stays intact.
 */
#include "testlib.h"

#include <pthread.h>

#include "arena.h"
#include "check.h"
#include "malloc.h"
#include "mcentral.h"
#include "mheap.h"
#include "pagealloc.h"

static char why[512];

static int quiescent_ok(void) {
    CHECKR(heap_check(HEAP_CHECK_QUIESCENT, why, sizeof why) == 0, "%s", why);
    return 1;
}

static void fill(void *p, size_t n, unsigned seed) {
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(seed + i * 7);
}

TEST(fresh_and_simple) {
    CHECK(heap_check(HEAP_CHECK_QUIESCENT, why, sizeof why) == 0); /* maybe before init */
    void *p = gm_malloc(1);
    CHECK(quiescent_ok());
    gm_free(p);
    CHECK(quiescent_ok());
    CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
    CHECK(gm_check_heap(0) == 0);
}

TEST(every_api_and_class) {
    static void *p[4096];
    size_t n = 0;
    for (size_t size = 0; size <= 40000; size += size < 256 ? 1 : size < 4096 ? 61 : 1021) {
        p[n] = gm_malloc(size);
        fill(p[n], size, (unsigned)n);
        n++;
    }
    for (size_t i = 0; i < 40; i++) p[n++] = gm_calloc(i + 1, 100 * i + 3);
    for (size_t a = 8; a <= (4u << 20); a *= 2) {
        p[n++] = gm_aligned_alloc(a, a * 3 / 2);
        void *q = NULL;
        CHECK(gm_posix_memalign(&q, a, 100) == 0);
        p[n++] = q;
        p[n++] = gm_memalign(a, 17);
    }
    p[n++] = gm_malloc(300 << 10);
    p[n++] = gm_malloc(3 << 20);
    CHECK(quiescent_ok());
    for (size_t i = 0; i < n; i += 3) p[i] = gm_realloc(p[i], (i * 977) % 70000 + 1);
    for (size_t i = 1; i < n; i += 5) p[i] = gm_reallocarray(p[i], 3, i + 5);
    CHECK(quiescent_ok());
    for (size_t i = 0; i < n; i += 2) gm_free(p[i]);
    CHECK(quiescent_ok());
    for (size_t i = 1; i < n; i += 2) gm_free(p[i]);
    CHECK(quiescent_ok());
    gm_release_memory();
    CHECK(quiescent_ok());
}

/* Threads that allocate, then park while main frees their objects. */
struct park {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stage;
    size_t size, n;
    void **objs;
};

static void park_wait(struct park *k, int stage) {
    pthread_mutex_lock(&k->mu);
    while (k->stage < stage) pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
}

static void park_set(struct park *k, int stage) {
    pthread_mutex_lock(&k->mu);
    k->stage = stage;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void *parked_owner(void *arg) {
    struct park *k = arg;
    for (size_t i = 0; i < k->n; i++) k->objs[i] = gm_malloc(k->size);
    park_set(k, 1);
    park_wait(k, 2); /* main frees half of them remotely */
    /* the owner allocates again: drains its notify stack */
    void *more[64];
    for (int i = 0; i < 64; i++) more[i] = gm_malloc(k->size);
    for (int i = 0; i < 64; i++) gm_free(more[i]);
    park_set(k, 3);
    park_wait(k, 4);
    return NULL; /* exits owning spans: they go to mcentral */
}

TEST(remote_frees_pending_and_handed_back) {
    static const size_t sizes[] = {16, 48, 512, 4000, 20000};
    for (unsigned si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        static void *objs[3000];
        struct park k = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, sizes[si], 3000, objs};
        pthread_t t;
        pthread_create(&t, NULL, parked_owner, &k);
        park_wait(&k, 1);
        CHECK(quiescent_ok());
        for (size_t i = 0; i < k.n; i += 2) gm_free(objs[i]); /* remote: notify stacks */
        CHECK(quiescent_ok());
        park_set(&k, 2);
        park_wait(&k, 3);
        CHECK(quiescent_ok());
        park_set(&k, 4);
        pthread_join(t, NULL);
        CHECK(quiescent_ok()); /* unowned partial spans */
        for (size_t i = 1; i < k.n; i += 4) gm_free(objs[i]);
        CHECK(quiescent_ok());
        for (size_t i = 3; i < k.n; i += 4) gm_free(objs[i]);
        CHECK(quiescent_ok()); /* unowned spans died */
    }
}

static void *churn(void *arg) {
    uint64_t r = (uintptr_t)arg;
    void *keep[256] = {0};
    for (int i = 0; i < 20000; i++) {
        unsigned j = (unsigned)(tl_rand(&r) % 256);
        gm_free(keep[j]);
        size_t size = tl_rand(&r) % 8 == 0 ? tl_rand(&r) % 100000 : tl_rand(&r) % 2000;
        keep[j] = gm_malloc(size);
        if (i % 5000 == 0) gm_release_memory();
    }
    for (int j = 0; j < 256; j++) gm_free(keep[j]);
    return NULL;
}

static _Atomic int stop_checker;

static void *locked_checker(void *arg) {
    (void)arg;
    int n = 0;
    while (!atomic_load(&stop_checker)) {
        if (heap_check(HEAP_CHECK_LOCKED, why, sizeof why) != 0) return (void *)1;
        n++;
    }
    return NULL;
}

TEST(locked_mode_while_threads_allocate) {
    pthread_t t[3], ck;
    atomic_store(&stop_checker, 0);
    pthread_create(&ck, NULL, locked_checker, NULL);
    for (uintptr_t i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)(i + 1));
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    atomic_store(&stop_checker, 1);
    void *res;
    pthread_join(ck, &res);
    CHECKF(res == NULL, "locked check failed: %s", why);
    CHECK(quiescent_ok());
}

TEST(memory_limit_and_scavenger) {
    static void *p[200];
    for (int i = 0; i < 200; i++) p[i] = gm_malloc(100000);
    gm_set_memory_limit(8 << 20);
    for (int i = 0; i < 200; i += 2) gm_free(p[i]);
    for (int i = 0; i < 100; i++) p[i * 2] = gm_malloc(5000);
    CHECK(quiescent_ok());
    gm_set_memory_limit(GM_NO_LIMIT);
    for (int i = 0; i < 200; i++) gm_free(p[i]);
    CHECK(quiescent_ok());
}

/* ---- Corruption is reported ------------------------------------------ */

/* A heap in a known shape, set up in the parent; each corruption runs in a
 * forked child (tl_run_child), which runs heap_check and prints what it
 * found on stderr, exiting 0 only if it found something. */
static void *small_obj[8], *large_obj;
static uint8_t small_spc;

static void setup_victims(void) {
    if (large_obj) return;
    small_spc = small_spanclass(48);
    for (int i = 0; i < 8; i++) small_obj[i] = gm_malloc(48);
    gm_free(small_obj[7]); /* on the reuse stack */
    large_obj = gm_malloc(200 << 10);
}

static void run_check(void (*corrupt)(void)) {
    corrupt();
    char w[512];
    if (heap_check(HEAP_CHECK_QUIESCENT, w, sizeof w) == 0) {
        fprintf(stderr, "(not detected)");
        _exit(1);
    }
    fprintf(stderr, "%s", w);
    _exit(0);
}

static void (*corruption)(void);
static void child(void *arg) {
    (void)arg;
    run_check(corruption);
}

static int detects(void (*corrupt)(void), const char *expect) {
    setup_victims();
    CHECKR(quiescent_ok(), "before corrupting");
    char err[1024];
    corruption = corrupt;
    int st = tl_run_child(child, NULL, err, sizeof err, 30);
    CHECKR(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, err);
    CHECKR(strstr(err, expect) != NULL, "expected '%s', got: %s", expect, err);
    TLOG("%s", err);
    return 1;
}

static mspan *small_span(void) { return span_lookup((uintptr_t)small_obj[0]); }
static unsigned obj_index(void *p) {
    mspan *s = span_lookup((uintptr_t)p);
    return (unsigned)(((uintptr_t)p - s->base) / s->elemsize);
}

static void c_alloc_bit(void) {
    mspan *s = small_span();
    unsigned i = obj_index(small_obj[1]);
    span_set_alloc_word(s, i / 64, span_alloc_word(s, i / 64) & ~((uint64_t)1 << (i % 64)));
}
static void c_remote_uncounted(void) {
    mspan *s = small_span();
    unsigned i = obj_index(small_obj[2]);
    atomic_fetch_or(&s->bits[2 * (i / 64) + 1], (uint64_t)1 << (i % 64));
}
static void c_remote_entry(void) {
    /* a held-back count for a remote free that never happened */
    mcache *c = current_cache();
    mspan *s = small_span();
    c->remote[small_spc] = (struct remote_pending){s, 1, remote_limit(s)};
    c->remote_mask[small_spc / 64] |= (uint64_t)1 << (small_spc % 64);
}
static void c_summary(void) {
    heap_arena *ha = arena_of((uintptr_t)large_obj);
    ha->chunk_sum[((uintptr_t)large_obj - ha->base) >> CHUNK_SHIFT] ^= 1;
}
static void c_scav_counter(void) { mheap_.pages.scav_pages++; }
static void c_pagecache_counter(void) { atomic_fetch_add(&mheap_.pagecache_free, 1); }
static void c_npartial(void) { mheap_.central[small_spc].npartial++; }
static void c_nfull(void) { mheap_.central[small_spc].nfull++; }
static void c_arena_index(void) {
    heap_arena *ha = arena_of((uintptr_t)large_obj + PAGE_SIZE);
    atomic_store(&ha->spans[(((uintptr_t)large_obj + PAGE_SIZE) - ha->base) >> PAGE_SHIFT], NULL);
}
static void c_pages_inuse(void) { atomic_fetch_add(&mheap_.pages_inuse, 1); }
static void c_reuse_dup(void) {
    struct cache_class *k = cache_class_of(current_cache(), small_spc);
    reuse_stack(k)[reuse_depth(k)] = reuse_stack(k)[reuse_depth(k) - 1];
    reuse_word_add(k, REUSE_PUSH);
}
static void c_large_size(void) { span_lookup((uintptr_t)large_obj)->elemsize += PAGE_SIZE; }
static void c_class(void) {
    mspan *s = small_span();
    atomic_fetch_xor(&s->free_state, (uint64_t)4 << FS_CLASS_SHIFT);
}
static void c_stats(void) { atomic_fetch_add(&orphan_stats.nfree[spanclass_sizeclass(small_spc)], 1); }
static void c_owner(void) { atomic_store(&small_span()->owner, NULL); }
static void c_free_pages(void) { mheap_.pages.free_pages++; }
static struct free_entry *entry_of(void *p) { return free_entry_of((uintptr_t)p); }
/* a large object's page named as this thread's: its frees would take the
 * small-object fast path */
static void c_free_map_owner(void) { atomic_store(&entry_of(large_obj)->owner, thread_id()); }
/* objects past the span's fresh mark accepted by the fast path */
static void c_free_map_fresh(void) { entry_of(small_obj[0])->fast_fresh++; }
static void c_record(void) { mheap_.spanalloc[0].inuse += mheap_.spanalloc[0].size; }

TEST(detects_alloc_bit_cleared) { CHECK(detects(c_alloc_bit, "objects live")); }
TEST(detects_uncounted_remote_free) { CHECK(detects(c_remote_uncounted, "free_state counts")); }
TEST(detects_bogus_remote_entry) { CHECK(detects(c_remote_entry, "1 uncounted")); }
TEST(detects_bad_summary) { CHECK(detects(c_summary, "summary")); }
TEST(detects_scavenged_counter) { CHECK(detects(c_scav_counter, "counters say")); }
TEST(detects_page_cache_counter) { CHECK(detects(c_pagecache_counter, "page caches hold")); }
TEST(detects_npartial) { CHECK(detects(c_npartial, "npartial")); }
TEST(detects_nfull) { CHECK(detects(c_nfull, "FULL spans, mcentral counts")); }
TEST(detects_arena_index) { CHECK(detects(c_arena_index, "arena index says")); }
TEST(detects_pages_inuse) { CHECK(detects(c_pages_inuse, "pages_inuse")); }
TEST(detects_reuse_duplicate) { CHECK(detects(c_reuse_dup, "twice on the reuse stack")); }
TEST(detects_large_size) { CHECK(detects(c_large_size, "large span")); }
TEST(detects_state_class) { CHECK(detects(c_class, "free_state class")); }
TEST(detects_statistics) { CHECK(detects(c_stats, "Mallocs")); }
TEST(detects_lost_owner) { CHECK(detects(c_owner, "owner 0x0")); }
TEST(detects_free_counter) { CHECK(detects(c_free_pages, "counters say")); }
TEST(detects_free_map_owner) { CHECK(detects(c_free_map_owner, "free map names owner")); }
TEST(detects_free_map_fresh) { CHECK(detects(c_free_map_fresh, "free-map entry differs")); }
TEST(detects_record_leak) { CHECK(detects(c_record, "span records")); }

TEST_MAIN()

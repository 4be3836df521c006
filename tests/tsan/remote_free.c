/*
 * remote_free.c: the lock-free protocols of the allocator under
 * ThreadSanitizer (make tsan). The library objects are built with
 * -fsanitize=thread, without src/override.c and src/new.cc so that TSan's
 * own malloc stays the process malloc; everything here goes through the gm_
 * API. Any data race TSan sees aborts the run (halt_on_error=1).
 *
 * Scenarios, each with its contents checked:
 *  - remote frees into spans owned by a thread that keeps allocating (the
 *    owner absorbs them, its notify stack is pushed by several threads);
 *  - owners exiting while their objects are freed elsewhere (spans handed
 *    back to mcentral, FULL -> PARTIAL -> DEAD by remote frees, adopted by
 *    threads that allocate the same classes);
 *  - many threads freeing disjoint parts of the same unowned spans;
 *  - large objects freed, and resized in place, by threads that did not
 *    allocate them;
 *  - the scavenger, gm_release_memory, the memory limit and heap_check's
 *    locked mode running against all of that.
 * Batches of objects move between threads through atomic slots (release /
 * acquire), as a program would hand them over.
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#include "gomalloc.h"

#define BATCH 256

struct batch {
    void *p[BATCH];
    size_t size[BATCH];
    unsigned n;
};

static void fill(void *p, size_t n, uintptr_t seed) {
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(seed + i);
}

static int intact(const void *p, size_t n, uintptr_t seed) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (unsigned char)(seed + i)) return 0;
    return 1;
}

static _Atomic int failures;

static void check_free(void *p, size_t size) {
    if (!intact(p, size, (uintptr_t)p)) {
        atomic_fetch_add(&failures, 1);
        fprintf(stderr, "object %p (%zu bytes) corrupted\n", p, size);
    }
    gm_free(p);
}

static void *alloc_filled(size_t size) {
    void *p = gm_malloc(size);
    if (!p) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    fill(p, size, (uintptr_t)p);
    return p;
}

/* A single-slot mailbox per (producer, consumer) pair. */
struct mailbox {
    struct batch *_Atomic slot;
};

static struct batch *take(struct mailbox *m, _Atomic int *done) {
    for (;;) {
        struct batch *b = atomic_exchange_explicit(&m->slot, NULL, memory_order_acq_rel);
        if (b) return b;
        if (atomic_load(done)) return NULL;
        sched_yield();
    }
}

static void put(struct mailbox *m, struct batch *b) {
    struct batch *expected = NULL;
    while (!atomic_compare_exchange_weak_explicit(&m->slot, &expected, b, memory_order_release,
                                                  memory_order_relaxed)) {
        expected = NULL;
        sched_yield();
    }
}

/* ---- Owners that keep allocating, remote frees from several threads ---- */

#define NCONS 3

struct owner_arg {
    struct mailbox box[NCONS];
    _Atomic int done;
    unsigned rounds;
    uint64_t seed;
};

static void *owner_thread(void *arg) {
    struct owner_arg *a = arg;
    uint64_t r = a->seed;
    void *mine[64] = {0};
    size_t mine_size[64] = {0};
    for (unsigned round = 0; round < a->rounds; round++) {
        struct batch *b = gm_malloc(sizeof *b); /* the batch record itself crosses threads too */
        b->n = BATCH;
        for (unsigned i = 0; i < BATCH; i++) {
            size_t size = 16 + tl_rand(&r) % (i % 16 == 0 ? 4000 : 300);
            b->size[i] = size;
            b->p[i] = alloc_filled(size);
        }
        put(&a->box[round % NCONS], b);
        /* meanwhile, local churn on the same classes: refills drain the
         * notify stack and absorb the remote frees */
        for (unsigned i = 0; i < 200; i++) {
            unsigned j = (unsigned)(tl_rand(&r) % 64);
            if (mine[j]) check_free(mine[j], mine_size[j]);
            mine_size[j] = 16 + tl_rand(&r) % 300;
            mine[j] = alloc_filled(mine_size[j]);
        }
    }
    for (unsigned j = 0; j < 64; j++)
        if (mine[j]) check_free(mine[j], mine_size[j]);
    atomic_store(&a->done, 1);
    return NULL;
}

struct consumer_arg {
    struct mailbox *box;
    _Atomic int *done;
};

static void *consumer_thread(void *arg) {
    struct consumer_arg *c = arg;
    struct batch *b;
    while ((b = take(c->box, c->done)) != NULL) {
        for (unsigned i = 0; i < b->n; i++) check_free(b->p[i], b->size[i]);
        gm_free(b);
    }
    return NULL;
}

static void run_owners(unsigned nowners, unsigned rounds) {
    struct owner_arg a[4];
    struct consumer_arg ca[4][NCONS];
    pthread_t ot[4], ct[4][NCONS];
    for (unsigned o = 0; o < nowners; o++) {
        memset(&a[o], 0, sizeof a[o]);
        a[o].rounds = rounds;
        a[o].seed = 1234 + o;
        for (unsigned k = 0; k < NCONS; k++) {
            ca[o][k] = (struct consumer_arg){&a[o].box[k], &a[o].done};
            pthread_create(&ct[o][k], NULL, consumer_thread, &ca[o][k]);
        }
        pthread_create(&ot[o], NULL, owner_thread, &a[o]);
    }
    for (unsigned o = 0; o < nowners; o++) {
        pthread_join(ot[o], NULL);
        for (unsigned k = 0; k < NCONS; k++) pthread_join(ct[o][k], NULL);
    }
}

TEST(remote_frees_into_owned_spans) {
    run_owners(2, 60);
    CHECK(atomic_load(&failures) == 0);
    CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
}

/* ---- Owners exit while their objects are freed elsewhere -------------- */

static struct mailbox exit_box[4];
static _Atomic int exit_done;

static void *short_lived_owner(void *arg) {
    uintptr_t k = (uintptr_t)arg;
    uint64_t r = k * 77 + 1;
    struct batch *b = gm_malloc(sizeof *b);
    b->n = BATCH;
    for (unsigned i = 0; i < BATCH; i++) {
        b->size[i] = 8 + tl_rand(&r) % (i % 32 == 0 ? 20000 : 1024);
        b->p[i] = alloc_filled(b->size[i]);
    }
    put(&exit_box[k % 4], b);
    return NULL; /* exits owning the spans: handed back to mcentral */
}

static void *exit_consumer(void *arg) {
    struct mailbox *m = arg;
    struct batch *b;
    uint64_t r = (uintptr_t)m;
    while ((b = take(m, &exit_done)) != NULL) {
        /* free in a random order, and allocate the same sizes meanwhile:
         * partial spans of exited owners get adopted */
        void *keep[16] = {0};
        size_t keep_size[16] = {0};
        for (unsigned i = 0; i < b->n; i++) {
            unsigned j = (unsigned)((i * 101 + r) % b->n);
            if (b->p[j]) {
                check_free(b->p[j], b->size[j]);
                b->p[j] = NULL;
            }
            unsigned s = (unsigned)(tl_rand(&r) % 16);
            if (keep[s]) check_free(keep[s], keep_size[s]);
            keep_size[s] = b->size[i];
            keep[s] = alloc_filled(keep_size[s]);
        }
        for (unsigned i = 0; i < b->n; i++)
            if (b->p[i]) check_free(b->p[i], b->size[i]);
        for (unsigned s = 0; s < 16; s++)
            if (keep[s]) check_free(keep[s], keep_size[s]);
        gm_free(b);
    }
    return NULL;
}

TEST(owners_exit_spans_adopted) {
    pthread_t cons[4];
    atomic_store(&exit_done, 0);
    for (uintptr_t k = 0; k < 4; k++) pthread_create(&cons[k], NULL, exit_consumer, &exit_box[k]);
    for (uintptr_t round = 0; round < 40; round++) {
        pthread_t t[4];
        for (uintptr_t k = 0; k < 4; k++) pthread_create(&t[k], NULL, short_lived_owner, (void *)(round * 4 + k));
        for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
    }
    atomic_store(&exit_done, 1);
    for (int k = 0; k < 4; k++) pthread_join(cons[k], NULL);
    CHECK(atomic_load(&failures) == 0);
    CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
}

/* ---- Many threads freeing the same unowned spans ----------------------- */

#define SHARED_N 6000
static void *shared_obj[SHARED_N];
static size_t shared_size;
static _Atomic int go;

static void *fill_and_exit(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < SHARED_N; i++) shared_obj[i] = alloc_filled(shared_size);
    return NULL;
}

static void *free_share(void *arg) {
    uintptr_t k = (uintptr_t)arg;
    while (!atomic_load_explicit(&go, memory_order_acquire)) sched_yield();
    void *mine[32] = {0};
    for (unsigned i = (unsigned)k; i < SHARED_N; i += 4) {
        check_free(shared_obj[i], shared_size);
        if (k == 3) { /* one thread also allocates the class: adopts partial spans */
            unsigned s = i % 32;
            if (mine[s]) check_free(mine[s], shared_size);
            mine[s] = alloc_filled(shared_size);
        }
    }
    for (unsigned s = 0; s < 32; s++)
        if (mine[s]) check_free(mine[s], shared_size);
    return NULL;
}

TEST(concurrent_frees_into_unowned_spans) {
    static const size_t sizes[] = {16, 64, 208, 1024, 6784, 28672};
    for (unsigned si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        shared_size = sizes[si];
        pthread_t f, t[4];
        pthread_create(&f, NULL, fill_and_exit, NULL);
        pthread_join(f, NULL); /* every span is now unowned and FULL */
        atomic_store(&go, 0);
        for (uintptr_t k = 0; k < 4; k++) pthread_create(&t[k], NULL, free_share, (void *)k);
        atomic_store_explicit(&go, 1, memory_order_release);
        for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
        CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
    }
    CHECK(atomic_load(&failures) == 0);
}

/* ---- Large objects across threads -------------------------------------- */

static struct mailbox large_box;
static _Atomic int large_done;

static void *large_producer(void *arg) {
    (void)arg;
    uint64_t r = 99;
    for (unsigned round = 0; round < 60; round++) {
        struct batch *b = gm_malloc(sizeof *b);
        b->n = 8;
        for (unsigned i = 0; i < b->n; i++) {
            b->size[i] = 33000 + tl_rand(&r) % (i == 0 ? 3000000 : 300000);
            b->p[i] = alloc_filled(b->size[i]);
        }
        put(&large_box, b);
        void *q = alloc_filled(70000); /* meanwhile, large spans of our own */
        check_free(q, 70000);
    }
    atomic_store(&large_done, 1);
    return NULL;
}

static void *large_consumer(void *arg) {
    (void)arg;
    struct batch *b;
    while ((b = take(&large_box, &large_done)) != NULL) {
        for (unsigned i = 0; i < b->n; i++) {
            /* resize in place (grow or shrink) some before freeing */
            if (i % 2 == 0) {
                size_t keep = b->size[i] / 2;
                if (!intact(b->p[i], keep, (uintptr_t)b->p[i])) atomic_fetch_add(&failures, 1);
                void *q = gm_realloc(b->p[i], i % 4 == 0 ? keep : b->size[i] + 40000);
                if (!q || !intact(q, keep, (uintptr_t)b->p[i])) atomic_fetch_add(&failures, 1);
                gm_free(q);
            } else {
                check_free(b->p[i], b->size[i]);
            }
        }
        gm_free(b);
    }
    return NULL;
}

TEST(large_objects_freed_elsewhere) {
    pthread_t p, c;
    atomic_store(&large_done, 0);
    pthread_create(&c, NULL, large_consumer, NULL);
    pthread_create(&p, NULL, large_producer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    CHECK(atomic_load(&failures) == 0);
    CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
}

/* ---- Everything at once, with the scavenger and checks ------------------ */

static _Atomic int stop_bg;

static void *background(void *arg) {
    uintptr_t k = (uintptr_t)arg;
    unsigned n = 0;
    while (!atomic_load(&stop_bg)) {
        if (k == 0) gm_release_memory();
        if (k == 1) gm_set_memory_limit(n % 2 ? (uint64_t)32 << 20 : GM_NO_LIMIT);
        if (k == 2 && gm_check_heap(0) != 0) atomic_fetch_add(&failures, 1);
        n++;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    gm_set_memory_limit(GM_NO_LIMIT);
    return NULL;
}

TEST(with_scavenger_limit_and_checks) {
    pthread_t bg[3];
    atomic_store(&stop_bg, 0);
    for (uintptr_t k = 0; k < 3; k++) pthread_create(&bg[k], NULL, background, (void *)k);
    run_owners(3, 150);
    atomic_store(&stop_bg, 1);
    for (int k = 0; k < 3; k++) pthread_join(bg[k], NULL);
    CHECK(atomic_load(&failures) == 0);
    CHECK(gm_check_heap(GM_CHECK_QUIESCENT) == 0);
}

/* Statistics read while other threads allocate: the per-thread counters and
 * windows the fast paths write are stored with relaxed atomics (plain moves
 * on x86-64 and aarch64) and read so by mcache_sum_stats. A snapshot taken
 * while threads allocate is close, not exact, but never a data race. */
static void *stats_reader(void *arg) {
    (void)arg;
    struct gm_memstats st;
    while (!atomic_load(&stop_bg)) gm_read_memstats(&st);
    return NULL;
}

TEST(stats_while_allocating) {
    pthread_t r;
    atomic_store(&stop_bg, 0);
    pthread_create(&r, NULL, stats_reader, NULL);
    run_owners(1, 20);
    atomic_store(&stop_bg, 1);
    pthread_join(r, NULL);
    CHECK(atomic_load(&failures) == 0);
}

TEST_MAIN()

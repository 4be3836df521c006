/*
 * Stress of the span hand-over between threads: spans left behind by exited
 * threads sit unowned in mcentral; new threads adopt them while other
 * threads are still freeing objects in them (the race in which a remote free
 * sees a span become owned). Generations of allocating threads exit with
 * live objects; the next generation's freeing threads and allocating threads
 * run at the same time. Every object's contents are checked before it is
 * freed. (Found by the larson benchmark at 8 threads.)
 */
#include "testlib.h"

#include <pthread.h>
#include <stdatomic.h>

#define OBJS 60000
#define GENS 100
#define FREERS 3
#define ALLOCERS 5

struct obj {
    uint64_t id;
    size_t n;
};

static struct obj *objs[OBJS];
static atomic_int errors;

static size_t size_of(uint64_t id) { return 16 + (id * 2654435761u) % 200; }

static void fill(struct obj *o, uint64_t id) {
    o->id = id;
    o->n = size_of(id);
    memset((char *)o + sizeof *o, (int)(id & 0xff), o->n - sizeof *o);
}

static int ok(const struct obj *o) {
    if (o->n != size_of(o->id)) return 0;
    const unsigned char *b = (const unsigned char *)o + sizeof *o;
    for (size_t i = 0; i < o->n - sizeof *o; i++)
        if (b[i] != (o->id & 0xff)) return 0;
    return 1;
}

struct range {
    int lo, hi;
    uint64_t gen;
};

static void *alloc_range(void *arg) {
    struct range *r = arg;
    for (int i = r->lo; i < r->hi; i++) {
        uint64_t id = r->gen * OBJS + (uint64_t)i;
        objs[i] = malloc(size_of(id));
        if (!objs[i]) {
            atomic_fetch_add(&errors, 1);
            return NULL;
        }
        fill(objs[i], id);
    }
    return NULL; /* exits with everything alive: its spans become unowned */
}

static void *free_range(void *arg) {
    struct range *r = arg;
    for (int i = r->lo; i < r->hi; i++) {
        if (!ok(objs[i])) atomic_fetch_add(&errors, 1);
        free(objs[i]);
        objs[i] = NULL;
    }
    return NULL;
}

static void *alloc_scratch(void *arg) {
    /* Allocates the same sizes: adopts the partial spans being freed into. */
    uint64_t seed = (uintptr_t)arg;
    struct obj *mine[2000];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 2000; i++) {
            uint64_t id = tl_rand(&seed) % 1000000;
            mine[i] = malloc(size_of(id));
            fill(mine[i], id);
        }
        for (int i = 0; i < 2000; i++) {
            if (!ok(mine[i])) atomic_fetch_add(&errors, 1);
            free(mine[i]);
        }
    }
    return NULL;
}

TEST(adopt_while_remote_frees) {
    struct range r[FREERS];
    pthread_t t[FREERS + ALLOCERS];
    for (uint64_t g = 0; g < GENS; g++) {
        for (int k = 0; k < FREERS; k++) {
            r[k] = (struct range){k * (OBJS / FREERS), (k + 1) * (OBJS / FREERS), g};
            pthread_create(&t[k], NULL, alloc_range, &r[k]);
        }
        for (int k = 0; k < FREERS; k++) pthread_join(t[k], NULL);
        /* free them from other threads while others allocate */
        for (int k = 0; k < FREERS; k++) pthread_create(&t[k], NULL, free_range, &r[(k + 1) % FREERS]);
        for (int k = 0; k < ALLOCERS; k++)
            pthread_create(&t[FREERS + k], NULL, alloc_scratch, (void *)(uintptr_t)(g * 10 + (uint64_t)k + 1));
        for (int k = 0; k < FREERS + ALLOCERS; k++) pthread_join(t[k], NULL);
        CHECKF(atomic_load(&errors) == 0, "generation %llu: %d corrupted objects", (unsigned long long)g,
               atomic_load(&errors));
    }
}

TEST(allocator_is_gomalloc) {
    if (getenv("GM_EXPECT") && !strcmp(getenv("GM_EXPECT"), "0")) return;
    CHECK(tl_gomalloc_active());
}

TEST_MAIN()

/*
 * prodcons: producer/consumer; every object is freed by another thread.
 *
 *   prodcons THREADS OBJECTS
 *
 * THREADS/2 pairs (THREADS even, >= 2). In each pair the producer allocates
 * objects of skewed-small sizes, tags them and pushes the pointers through a
 * single-producer single-consumer ring (1024 slots); the consumer pops,
 * checks and frees them. OBJECTS in all, split over the pairs. Memory thus
 * flows one way: the allocator must take frees from a thread that never
 * allocates and hand the space back to the thread that does (remote frees).
 * A full or empty ring spins briefly, then sched_yield()s, so 4 and 8
 * threads on 2 cores still make progress.
 *
 * The consumer replays the producer's random sequence to know each object's
 * size and tag. Checksum: hash of every tag the consumers read back.
 */
#include "bench.h"

#define RING 1024

typedef struct {
    _Alignas(64) unsigned long head;   /* written by the producer */
    _Alignas(64) unsigned long tail;   /* written by the consumer */
    _Alignas(64) void *slot[RING];
} ring_t;

typedef struct {
    ring_t *ring;
    long n;
    int pair;
    uint64_t sum;
} targ_t;

static void backoff(int *spins)
{
    if (++*spins < 64) __builtin_ia32_pause();
    else sched_yield();
}

static void *producer(void *a_)
{
    targ_t *a = a_;
    ring_t *q = a->ring;
    rng_t r;
    rng_seed(&r, 2000 + (uint64_t)a->pair);
    unsigned long head = 0, tail_seen = 0;
    for (long i = 0; i < a->n; i++) {
        size_t n = size_skewed(&r);
        void *p = xmalloc(n);
        obj_fill(p, n, ((uint64_t)a->pair << 40) + (uint64_t)i);
        int spins = 0;
        while (head - tail_seen >= RING) {
            tail_seen = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
            if (head - tail_seen >= RING) backoff(&spins);
        }
        q->slot[head % RING] = p;
        __atomic_store_n(&q->head, ++head, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *consumer(void *a_)
{
    targ_t *a = a_;
    ring_t *q = a->ring;
    rng_t r;
    rng_seed(&r, 2000 + (uint64_t)a->pair);
    unsigned long tail = 0, head_seen = 0;
    uint64_t sum = 0;
    for (long i = 0; i < a->n; i++) {
        int spins = 0;
        while (tail == head_seen) {
            head_seen = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
            if (tail == head_seen) backoff(&spins);
        }
        void *p = q->slot[tail % RING];
        __atomic_store_n(&q->tail, ++tail, __ATOMIC_RELEASE);
        size_t n = size_skewed(&r);
        sum += obj_check(p, n, ((uint64_t)a->pair << 40) + (uint64_t)i);
        free(p);
    }
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) die("usage: prodcons THREADS OBJECTS");
    int threads = (int)arg_long(argc, argv, 1, 2);
    long objects = arg_long(argc, argv, 2, 0);
    if (threads < 2 || threads % 2) die("THREADS must be even and >= 2");
    int pairs = threads / 2;
    ring_t *rings = aligned_alloc(64, sizeof(ring_t) * (size_t)pairs);
    if (!rings) die("aligned_alloc failed");
    memset(rings, 0, sizeof(ring_t) * (size_t)pairs);
    targ_t prod[pairs], cons[pairs];
    pthread_t th[threads];
    for (int i = 0; i < pairs; i++) {
        long n = objects / pairs + (i < objects % pairs);
        prod[i] = (targ_t){ .ring = &rings[i], .n = n, .pair = i };
        cons[i] = prod[i];
    }
    /* Start consumers and producers interleaved so that every pair runs. */
    for (int i = 0; i < pairs; i++) {
        if (pthread_create(&th[2 * i], NULL, consumer, &cons[i]) ||
            pthread_create(&th[2 * i + 1], NULL, producer, &prod[i]))
            die("pthread_create failed");
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    uint64_t sum = 0;
    for (int i = 0; i < pairs; i++) sum += cons[i].sum;
    free(rings);
    printf("prodcons threads=%d objects=%ld checksum=%016llx\n",
           threads, objects, (unsigned long long)sum);
    return 0;
}

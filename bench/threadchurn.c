/*
 * threadchurn: many short-lived threads that allocate and free.
 *
 *   threadchurn THREADS TOTAL ALLOCS
 *
 * TOTAL threads in all, started in waves of THREADS that run at the same
 * time. Each thread frees the HANDOFF (8) objects that the thread with its
 * index in the previous wave left behind, then allocates ALLOCS objects of
 * skewed-small sizes, tags them, frees all but HANDOFF of them and exits.
 * Per-thread allocator state is created and torn down TOTAL times, and
 * objects outlive the thread that allocated them (an allocator must not
 * leak a dead thread's cache or free lists).
 *
 * Checksum: hash of every tag read back.
 */
#include "bench.h"

#define HANDOFF 8

typedef struct { void *p; size_t n; uint64_t tag; } slot_t;

typedef struct {
    int idx, wave, allocs;
    slot_t hand[HANDOFF];   /* objects left for the next wave's thread */
    uint64_t sum;
} targ_t;

static void *worker(void *a_)
{
    targ_t *a = a_;
    uint64_t sum = 0;
    for (int i = 0; i < HANDOFF; i++)
        if (a->hand[i].p) {
            sum += obj_check(a->hand[i].p, a->hand[i].n, a->hand[i].tag);
            free(a->hand[i].p);
            a->hand[i].p = NULL;
        }
    rng_t r;
    rng_seed(&r, ((uint64_t)a->wave << 16) + (uint64_t)a->idx);
    slot_t *s = xmalloc(sizeof(*s) * (size_t)a->allocs);
    uint64_t base = ((uint64_t)a->wave << 32) + ((uint64_t)a->idx << 20);
    for (int i = 0; i < a->allocs; i++) {
        size_t n = size_skewed(&r);
        s[i] = (slot_t){ xmalloc(n), n, base + (uint64_t)i };
        obj_fill(s[i].p, n, s[i].tag);
    }
    for (int i = 0; i < a->allocs; i++) {
        if (i % (a->allocs / HANDOFF) == 0 && i / (a->allocs / HANDOFF) < HANDOFF) {
            a->hand[i / (a->allocs / HANDOFF)] = s[i];
            continue;
        }
        sum += obj_check(s[i].p, s[i].n, s[i].tag);
        free(s[i].p);
    }
    free(s);
    a->sum += sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) die("usage: threadchurn THREADS TOTAL ALLOCS");
    int threads = (int)arg_long(argc, argv, 1, 1);
    long total = arg_long(argc, argv, 2, 0);
    int allocs = (int)arg_long(argc, argv, 3, 0);
    if (threads < 1 || allocs < HANDOFF) die("bad parameters");
    long waves = total / threads;
    targ_t args[threads];
    memset(args, 0, sizeof(args));
    pthread_t th[threads];
    for (long w = 0; w < waves; w++) {
        for (int t = 0; t < threads; t++) {
            args[t].idx = t;
            args[t].wave = (int)w;
            args[t].allocs = allocs;
            int e = pthread_create(&th[t], NULL, worker, &args[t]);
            if (e) die("pthread_create: %s", strerror(e));
        }
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    }
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < HANDOFF; i++)
            if (args[t].hand[i].p) {
                sum += obj_check(args[t].hand[i].p, args[t].hand[i].n, args[t].hand[i].tag);
                free(args[t].hand[i].p);
            }
        sum += args[t].sum;
    }
    printf("threadchurn threads=%d total=%ld allocs=%d checksum=%016llx\n",
           threads, waves * threads, allocs, (unsigned long long)sum);
    return 0;
}

/*
 * churn: random-size allocation churn with many live objects
 * (the shape of mimalloc-bench's alloc-test / glibc's bench-malloc-thread).
 *
 *   churn THREADS OPS LIVE
 *
 * LIVE slots in all, split over THREADS threads; each thread first fills its
 * slots, then performs its share of OPS replacements: pick a random slot,
 * check and free its object, allocate a new one of a skewed-small size
 * (60% <= 64 B, 25% <= 256 B, 12% <= 1 KiB, 3% <= 4 KiB) and tag it.
 * At the end every object is checked and freed.
 *
 * Checksum: a hash of every tag read back.
 */
#include "bench.h"

typedef struct {
    long ops;
    int live, id;
    uint64_t sum;
} targ_t;

typedef struct { void *p; size_t n; uint64_t tag; } slot_t;

static void *worker(void *a_)
{
    targ_t *a = a_;
    rng_t r;
    rng_seed(&r, 1000 + (uint64_t)a->id);
    slot_t *s = xmalloc(sizeof(*s) * (size_t)a->live);
    uint64_t sum = 0, seq = (uint64_t)a->id << 40;
    for (int i = 0; i < a->live; i++) {
        size_t n = size_skewed(&r);
        s[i] = (slot_t){ xmalloc(n), n, ++seq };
        obj_fill(s[i].p, n, s[i].tag);
    }
    for (long k = 0; k < a->ops; k++) {
        slot_t *x = &s[rng_below(&r, (uint32_t)a->live)];
        sum += obj_check(x->p, x->n, x->tag);
        free(x->p);
        size_t n = size_skewed(&r);
        *x = (slot_t){ xmalloc(n), n, ++seq };
        obj_fill(x->p, n, x->tag);
    }
    for (int i = 0; i < a->live; i++) {
        sum += obj_check(s[i].p, s[i].n, s[i].tag);
        free(s[i].p);
    }
    free(s);
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) die("usage: churn THREADS OPS LIVE");
    int threads = (int)arg_long(argc, argv, 1, 1);
    long ops = arg_long(argc, argv, 2, 0);
    long live = arg_long(argc, argv, 3, 0);
    if (threads < 1 || live < threads) die("need threads >= 1 and live >= threads");
    targ_t args[threads];
    for (int t = 0; t < threads; t++)
        args[t] = (targ_t){ .ops = ops / threads + (t < ops % threads),
                            .live = (int)(live / threads), .id = t };
    run_threads(threads, worker, args, sizeof(args[0]));
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) sum += args[t].sum;
    printf("churn threads=%d ops=%ld live=%ld checksum=%016llx\n",
           threads, ops, live, (unsigned long long)sum);
    return 0;
}

/*
 * larson: a server simulation in the manner of Larson & Krishnan's benchmark.
 *
 *   larson THREADS OPS GENERATIONS SLOTS MINSIZE MAXSIZE
 *
 * SLOTS objects in all, split into THREADS arrays; the main thread allocates
 * them. Each array is served by a chain of GENERATIONS threads: a thread
 * replaces random slots (check and free the old object, allocate one of a
 * uniform size in MINSIZE..MAXSIZE, tag it) OPS/(THREADS*GENERATIONS) times,
 * then starts its successor, hands it the array and exits. So most objects
 * are freed by a thread other than the one that allocated them, often after
 * that thread has exited: thread caches must be flushed or adopted at thread
 * exit, and the next generation's frees are remote frees. The original
 * benchmark runs for a fixed time and counts operations; this one does a
 * fixed amount of work, so its wall time is comparable.
 *
 * Checksum: hash of every tag read back.
 */
#include "bench.h"

typedef struct { void *p; size_t n; uint64_t tag; } slot_t;

typedef struct {
    slot_t *s;
    int nslots, chain, gen;
    long ops;
    uint64_t seq, sum;
} chain_t;

static int generations;
static size_t minsz, maxsz;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static int chains_done;

static void *worker(void *a_)
{
    chain_t *c = a_;
    rng_t r;
    rng_seed(&r, ((uint64_t)c->chain << 20) + (uint64_t)c->gen);
    uint64_t sum = 0;
    for (long k = 0; k < c->ops; k++) {
        slot_t *x = &c->s[rng_below(&r, (uint32_t)c->nslots)];
        sum += obj_check(x->p, x->n, x->tag);
        free(x->p);
        size_t n = rng_range(&r, minsz, maxsz);
        *x = (slot_t){ xmalloc(n), n, ++c->seq };
        obj_fill(x->p, n, x->tag);
    }
    c->sum += sum;
    if (++c->gen < generations) {
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int e = pthread_create(&t, &at, worker, c);
        if (e) die("pthread_create: %s", strerror(e));
        pthread_attr_destroy(&at);
    } else {
        pthread_mutex_lock(&done_mu);
        chains_done++;
        pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) die("usage: larson THREADS OPS GENERATIONS SLOTS MINSIZE MAXSIZE");
    int threads = (int)arg_long(argc, argv, 1, 1);
    long ops = arg_long(argc, argv, 2, 0);
    generations = (int)arg_long(argc, argv, 3, 1);
    long slots = arg_long(argc, argv, 4, 0);
    minsz = (size_t)arg_long(argc, argv, 5, 8);
    maxsz = (size_t)arg_long(argc, argv, 6, 1000);
    if (threads < 1 || generations < 1 || slots < threads || minsz < 1 || maxsz < minsz)
        die("bad parameters");

    chain_t *c = xmalloc(sizeof(*c) * (size_t)threads);
    rng_t r;
    rng_seed(&r, 3000);
    long per_gen = ops / ((long)threads * generations);
    for (int t = 0; t < threads; t++) {
        int n = (int)(slots / threads);
        c[t] = (chain_t){ .s = xmalloc(sizeof(slot_t) * (size_t)n), .nslots = n, .chain = t,
                          .ops = per_gen, .seq = (uint64_t)t << 40 };
        for (int i = 0; i < n; i++) {
            size_t sz = rng_range(&r, minsz, maxsz);
            c[t].s[i] = (slot_t){ xmalloc(sz), sz, ++c[t].seq };
            obj_fill(c[t].s[i].p, sz, c[t].s[i].tag);
        }
    }
    for (int t = 0; t < threads; t++) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &at, worker, &c[t])) die("pthread_create failed");
        pthread_attr_destroy(&at);
    }
    pthread_mutex_lock(&done_mu);
    while (chains_done < threads) pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);

    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) {
        for (int i = 0; i < c[t].nslots; i++) {
            sum += obj_check(c[t].s[i].p, c[t].s[i].n, c[t].s[i].tag);
            free(c[t].s[i].p);
        }
        sum += c[t].sum;
        free(c[t].s);
    }
    free(c);
    printf("larson threads=%d ops=%ld generations=%d slots=%ld size=%zu-%zu checksum=%016llx\n",
           threads, per_gen * threads * generations, generations, slots, minsz, maxsz,
           (unsigned long long)sum);
    return 0;
}

/*
 * cthrash: false sharing between threads (after Hoard's cache-thrash and
 * cache-scratch).
 *
 *   cthrash active|passive THREADS ITERS WRITES OBJSIZE
 *
 * Each thread repeats ITERS/THREADS times: allocate an OBJSIZE-byte object,
 * write each of its bytes WRITES times (volatile read-modify-write), free it.
 * An allocator that gives small objects from one cache line to several
 * threads makes those writes bounce the line between cores.
 *   active:  every thread allocates its own objects from the start (does the
 *            allocator keep each thread's objects on its own lines?).
 *   passive: the main thread allocates one object per thread, back to back,
 *            and hands them out; each thread writes its object, frees it,
 *            then continues as in active (does memory freed by a thread that
 *            did not allocate it come back to that thread on a shared line?).
 * The writes are the point here: time is dominated by them when lines are
 * shared, by malloc/free otherwise.
 *
 * Checksum: sum of every object's bytes after its writes (exact, known).
 */
#include "bench.h"

typedef struct {
    unsigned char *first;   /* passive: the object handed out by main */
    long iters;
    uint64_t sum;
} targ_t;

static long writes;
static size_t objsize;
static pthread_barrier_t start;

static uint64_t hammer(unsigned char *p)
{
    volatile unsigned char *v = p;
    for (size_t k = 0; k < objsize; k++) v[k] = (unsigned char)k;
    for (long w = 0; w < writes; w++)
        for (size_t k = 0; k < objsize; k++) v[k]++;
    uint64_t s = 0;
    for (size_t k = 0; k < objsize; k++) {
        if (v[k] != (unsigned char)(k + (size_t)writes))
            die("cthrash: object %p byte %zu is %u", (void *)p, k, v[k]);
        s += v[k];
    }
    return s;
}

static void *worker(void *a_)
{
    targ_t *a = a_;
    uint64_t sum = 0;
    pthread_barrier_wait(&start);
    if (a->first) {
        sum += hammer(a->first);
        free(a->first);
    }
    for (long i = 0; i < a->iters; i++) {
        unsigned char *p = xmalloc(objsize);
        sum += hammer(p);
        free(p);
    }
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) die("usage: cthrash active|passive THREADS ITERS WRITES OBJSIZE");
    int passive;
    if (!strcmp(argv[1], "active")) passive = 0;
    else if (!strcmp(argv[1], "passive")) passive = 1;
    else die("mode must be active or passive");
    int threads = (int)arg_long(argc, argv, 2, 1);
    long iters = arg_long(argc, argv, 3, 0);
    writes = arg_long(argc, argv, 4, 0);
    objsize = (size_t)arg_long(argc, argv, 5, 8);
    if (threads < 1 || objsize < 1) die("bad parameters");

    targ_t args[threads];
    for (int t = 0; t < threads; t++)
        args[t] = (targ_t){ .iters = iters / threads + (t < iters % threads) };
    if (passive)
        for (int t = 0; t < threads; t++) args[t].first = xmalloc(objsize);
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    run_threads(threads, worker, args, sizeof(args[0]));
    pthread_barrier_destroy(&start);
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) sum += args[t].sum;
    printf("cthrash mode=%s threads=%d iters=%ld writes=%ld objsize=%zu checksum=%016llx\n",
           argv[1], threads, iters, writes, objsize, (unsigned long long)sum);
    return 0;
}

/*
 * fastpath: the allocator's fast path, malloc and free in a tight loop.
 *
 *   fastpath THREADS PAIRS BATCH SIZE [SIZE...]
 *
 * PAIRS malloc+free pairs in all, split evenly over THREADS threads. Each
 * thread allocates BATCH objects (sizes cycling through the SIZE list), then
 * frees them in reverse order, and repeats. BATCH 1 is the pure pair
 * (malloc; free; malloc; free ...) that a thread cache should serve in a few
 * dozen instructions; a larger BATCH makes the cache grow and shrink.
 * Per-object work is one byte written and read back.
 *
 * Checksum: sum of the bytes read back; a byte that changed between malloc
 * and free (overlapping objects) fails the run.
 */
#include "bench.h"

typedef struct {
    long pairs;
    int batch, nsizes, id;
    const size_t *sizes;
    uint64_t sum;
} targ_t;

static void *worker(void *a_)
{
    targ_t *a = a_;
    unsigned char **p = xmalloc(sizeof(*p) * (size_t)a->batch);
    uint64_t sum = 0;
    int si = 0;
    long done = 0;
    while (done < a->pairs) {
        int b = a->batch;
        if (b > a->pairs - done) b = (int)(a->pairs - done);
        for (int i = 0; i < b; i++) {
            size_t n = a->sizes[si];
            if (++si == a->nsizes) si = 0;
            p[i] = xmalloc(n);
            p[i][0] = (unsigned char)(done + i + a->id);
        }
        for (int i = b - 1; i >= 0; i--) {
            if (p[i][0] != (unsigned char)(done + i + a->id))
                die("fastpath: object %p changed", (void *)p[i]);
            sum += p[i][0];
            free(p[i]);
        }
        done += b;
    }
    free(p);
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) die("usage: fastpath THREADS PAIRS BATCH SIZE [SIZE...]");
    int threads = (int)arg_long(argc, argv, 1, 1);
    long pairs = arg_long(argc, argv, 2, 0);
    int batch = (int)arg_long(argc, argv, 3, 1);
    if (threads < 1 || batch < 1) die("threads and batch must be >= 1");
    int nsizes = argc - 4;
    size_t sizes[nsizes];
    for (int i = 0; i < nsizes; i++) sizes[i] = (size_t)arg_long(argc, argv, 4 + i, 0);
    for (int i = 0; i < nsizes; i++) if (!sizes[i]) die("size must be >= 1");

    targ_t args[threads];
    for (int t = 0; t < threads; t++)
        args[t] = (targ_t){ .pairs = pairs / threads + (t < pairs % threads),
                            .batch = batch, .nsizes = nsizes, .id = t, .sizes = sizes };
    run_threads(threads, worker, args, sizeof(args[0]));

    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) sum += args[t].sum;
    printf("fastpath threads=%d pairs=%ld batch=%d sizes=%d checksum=%016llx\n",
           threads, pairs, batch, nsizes, (unsigned long long)sum);
    return 0;
}

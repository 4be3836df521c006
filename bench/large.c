/*
 * large: large objects, 32 KiB to 4 MiB.
 *
 *   large THREADS OPS LIVE MINSIZE MAXSIZE
 *
 * LIVE objects in all, split over THREADS threads; each thread replaces a
 * random one of its objects OPS/THREADS times. Sizes are log-uniform between
 * MINSIZE and MAXSIZE (an octave is picked uniformly, then a size uniformly
 * within it), so 32-64 KiB is as frequent as 2-4 MiB. Each new object gets a
 * tag at both ends and one byte written in every 4 KiB page, as a program
 * that fills its buffer would fault every page in: an allocator that returns
 * memory to the OS on every free pays the page faults again, one that keeps
 * it pays in RSS. The time is dominated by those page touches and by mmap,
 * munmap and madvise, which is what large allocations cost.
 *
 * Checksum: hash of the tags and of one touched byte per object.
 */
#include "bench.h"

typedef struct { unsigned char *p; size_t n; uint64_t tag; } slot_t;

typedef struct {
    long ops;
    int live, id;
    uint64_t sum;
} targ_t;

static size_t minsz, maxsz;
static int octaves;

static size_t large_size(rng_t *r)
{
    int k = (int)rng_below(r, (uint32_t)octaves);
    size_t lo = minsz << k, hi = (minsz << (k + 1)) - 1;
    if (hi > maxsz) hi = maxsz;
    return rng_range(r, lo, hi);
}

static void fill(slot_t *s)
{
    obj_fill(s->p, s->n, s->tag);
    for (size_t off = 4096; off + 8 < s->n; off += 4096) s->p[off] = (unsigned char)(s->tag + off / 4096);
}

static uint64_t check(const slot_t *s)
{
    uint64_t h = obj_check(s->p, s->n, s->tag);
    size_t pages = (s->n - 9) / 4096;   /* touched offsets: 4096 .. pages*4096 */
    if (pages) {
        size_t off = 4096 * (1 + (size_t)(s->tag % pages));
        if (off + 8 < s->n) {
            if (s->p[off] != (unsigned char)(s->tag + off / 4096))
                die("large: object %p byte %zu corrupted", (void *)s->p, off);
            h += s->p[off];
        }
    }
    return h;
}

static void *worker(void *a_)
{
    targ_t *a = a_;
    rng_t r;
    rng_seed(&r, 4000 + (uint64_t)a->id);
    slot_t *s = xmalloc(sizeof(*s) * (size_t)a->live);
    uint64_t sum = 0, seq = (uint64_t)a->id << 40;
    for (int i = 0; i < a->live; i++) {
        s[i].n = large_size(&r);
        s[i].p = xmalloc(s[i].n);
        s[i].tag = ++seq;
        fill(&s[i]);
    }
    for (long k = 0; k < a->ops; k++) {
        slot_t *x = &s[rng_below(&r, (uint32_t)a->live)];
        sum += check(x);
        free(x->p);
        x->n = large_size(&r);
        x->p = xmalloc(x->n);
        x->tag = ++seq;
        fill(x);
    }
    for (int i = 0; i < a->live; i++) {
        sum += check(&s[i]);
        free(s[i].p);
    }
    free(s);
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 6) die("usage: large THREADS OPS LIVE MINSIZE MAXSIZE");
    int threads = (int)arg_long(argc, argv, 1, 1);
    long ops = arg_long(argc, argv, 2, 0);
    long live = arg_long(argc, argv, 3, 0);
    minsz = (size_t)arg_long(argc, argv, 4, 32768);
    maxsz = (size_t)arg_long(argc, argv, 5, 4194304);
    if (threads < 1 || live < threads || minsz < 64 || maxsz < 2 * minsz) die("bad parameters");
    octaves = 0;
    while ((minsz << (octaves + 1)) <= maxsz) octaves++;
    targ_t args[threads];
    for (int t = 0; t < threads; t++)
        args[t] = (targ_t){ .ops = ops / threads + (t < ops % threads),
                            .live = (int)(live / threads), .id = t };
    run_threads(threads, worker, args, sizeof(args[0]));
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) sum += args[t].sum;
    printf("large threads=%d ops=%ld live=%ld size=%zu-%zu checksum=%016llx\n",
           threads, ops, live, minsz, maxsz, (unsigned long long)sum);
    return 0;
}

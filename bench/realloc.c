/*
 * realloc: many strings and vectors growing by appends at once.
 *
 *   realloc THREADS ROUNDS BUFFERS APPENDS
 *
 * BUFFERS growing buffers in all, split over THREADS threads. Each round a
 * thread makes its share of APPENDS appends of 1..48 bytes to buffers picked
 * at random with a skew (buffer index u1*u2/B for uniform u1, u2: a few
 * buffers grow to tens of KiB, most stay short). Even buffers are strings
 * grown with realloc to the exact new length at every append (naive
 * concatenation: the allocator's in-place growth and size-class slack
 * matter); odd buffers are vectors that double their capacity (from 16 B)
 * when full. At the end of a round every byte of every buffer is checked
 * against the value its position implies, then the buffers are freed.
 *
 * Checksum: hash of every buffer's length and last byte.
 */
#include "bench.h"

typedef struct { unsigned char *p; size_t len, cap; } buf_t;

typedef struct {
    int rounds, bufs, id;
    long appends;
    uint64_t sum;
} targ_t;

static inline unsigned char byte_at(uint64_t seed, size_t pos)
{
    return (unsigned char)(seed + pos * 7 + (pos >> 8));
}

static void *worker(void *a_)
{
    targ_t *a = a_;
    rng_t r;
    rng_seed(&r, 5000 + (uint64_t)a->id);
    buf_t *b = xmalloc(sizeof(*b) * (size_t)a->bufs);
    uint64_t sum = 0;
    for (int round = 0; round < a->rounds; round++) {
        memset(b, 0, sizeof(*b) * (size_t)a->bufs);
        for (long k = 0; k < a->appends; k++) {
            uint32_t u1 = rng_below(&r, (uint32_t)a->bufs), u2 = rng_below(&r, (uint32_t)a->bufs);
            int i = (int)(((uint64_t)u1 * u2) / (uint64_t)a->bufs);
            size_t n = rng_range(&r, 1, 48);
            buf_t *x = &b[i];
            size_t need = x->len + n;
            if (i % 2 == 0) {
                x->p = xrealloc(x->p, need);
                x->cap = need;
            } else if (need > x->cap) {
                size_t c = x->cap ? x->cap : 16;
                while (c < need) c *= 2;
                x->p = xrealloc(x->p, c);
                x->cap = c;
            }
            uint64_t seed = (uint64_t)i * 131 + (uint64_t)round;
            for (size_t j = 0; j < n; j++) x->p[x->len + j] = byte_at(seed, x->len + j);
            x->len = need;
        }
        for (int i = 0; i < a->bufs; i++) {
            buf_t *x = &b[i];
            uint64_t seed = (uint64_t)i * 131 + (uint64_t)round;
            for (size_t j = 0; j < x->len; j++)
                if (x->p[j] != byte_at(seed, j))
                    die("realloc: buffer %d byte %zu of %zu is wrong", i, j, x->len);
            if (x->len) sum += mix64(x->len ^ ((uint64_t)x->p[x->len - 1] << 32) ^ (uint64_t)i);
            free(x->p);
        }
    }
    free(b);
    a->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 5) die("usage: realloc THREADS ROUNDS BUFFERS APPENDS");
    int threads = (int)arg_long(argc, argv, 1, 1);
    int rounds = (int)arg_long(argc, argv, 2, 1);
    long bufs = arg_long(argc, argv, 3, 0);
    long appends = arg_long(argc, argv, 4, 0);
    if (threads < 1 || bufs < threads) die("bad parameters");
    targ_t args[threads];
    for (int t = 0; t < threads; t++)
        args[t] = (targ_t){ .rounds = rounds, .bufs = (int)(bufs / threads), .id = t,
                            .appends = appends / threads };
    run_threads(threads, worker, args, sizeof(args[0]));
    uint64_t sum = 0;
    for (int t = 0; t < threads; t++) sum += args[t].sum;
    printf("realloc threads=%d rounds=%d buffers=%ld appends=%ld checksum=%016llx\n",
           threads, rounds, bufs, appends, (unsigned long long)sum);
    return 0;
}

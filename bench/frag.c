/*
 * frag: fragmentation and peak memory.
 *
 *   frag ROUNDS MIB KEEP_PERCENT
 *
 * Each round: (1) allocate objects of one size range until MIB MiB are
 * requested; (2) free all but KEEP_PERCENT of them, chosen at random, so the
 * survivors are scattered over all the memory of step 1; (3) allocate
 * objects of a different size range until as many bytes as were freed are
 * requested again; then check and free everything. The rounds cycle through
 *     small 16-256 B     then medium 512 B-4 KiB
 *     medium 1-8 KiB     then small 16-256 B
 *     tiny 16-128 B      then big 8-64 KiB
 * An allocator that can reuse the space freed in (2) for the sizes of (3)
 * peaks near MIB MiB of live data; one that keeps per-size-class pages
 * pinned by the scattered survivors peaks near twice that. The number to
 * read is the peak RSS; the time mostly measures page faults.
 *
 * Checksum: hash of every tag read back.
 */
#include "bench.h"

typedef struct { void *p; size_t n; } obj_t;

static const size_t ranges[3][4] = {
    { 16, 256, 512, 4096 },
    { 1024, 8192, 16, 256 },
    { 16, 128, 8192, 65536 },
};

static obj_t *objs;
static size_t nobjs, capobjs;

static void push(void *p, size_t n)
{
    if (nobjs == capobjs) {
        capobjs = capobjs ? capobjs * 2 : 4096;
        objs = xrealloc(objs, capobjs * sizeof(*objs));
    }
    objs[nobjs++] = (obj_t){ p, n };
}

static uint64_t tag_of(size_t i, int round) { return ((uint64_t)round << 48) + i * 0x9E3779B1u; }

int main(int argc, char **argv)
{
    if (argc != 4) die("usage: frag ROUNDS MIB KEEP_PERCENT");
    int rounds = (int)arg_long(argc, argv, 1, 3);
    size_t total = (size_t)arg_long(argc, argv, 2, 64) << 20;
    uint32_t keep = (uint32_t)arg_long(argc, argv, 3, 10);
    if (keep > 100) die("KEEP_PERCENT must be 0..100");
    rng_t r;
    rng_seed(&r, 6000);
    uint64_t sum = 0;
    size_t survivors_total = 0;
    for (int round = 0; round < rounds; round++) {
        const size_t *rg = ranges[round % 3];
        nobjs = 0;
        size_t bytes = 0;
        while (bytes < total) {                               /* (1) */
            size_t n = rng_range(&r, rg[0], rg[1]);
            void *p = xmalloc(n);
            obj_fill(p, n, tag_of(nobjs, round));
            push(p, n);
            bytes += n;
        }
        size_t freed = 0, kept = 0;
        for (size_t i = 0; i < nobjs; i++) {                 /* (2) */
            sum += obj_check(objs[i].p, objs[i].n, tag_of(i, round));
            if (rng_below(&r, 100) < keep) { objs[kept++] = objs[i]; continue; }
            free(objs[i].p);
            freed += objs[i].n;
        }
        /* Survivors moved down to index 0..kept-1: re-tag them for their new index. */
        for (size_t i = 0; i < kept; i++) obj_fill(objs[i].p, objs[i].n, tag_of(i, round) ^ 1);
        nobjs = kept;
        survivors_total += kept;
        bytes = 0;
        while (bytes < freed) {                               /* (3) */
            size_t n = rng_range(&r, rg[2], rg[3]);
            void *p = xmalloc(n);
            obj_fill(p, n, tag_of(nobjs, round) ^ 1);
            push(p, n);
            bytes += n;
        }
        for (size_t i = 0; i < nobjs; i++) {
            sum += obj_check(objs[i].p, objs[i].n, tag_of(i, round) ^ 1);
            free(objs[i].p);
        }
    }
    free(objs);
    printf("frag rounds=%d mib=%zu keep=%u%% survivors=%zu checksum=%016llx\n",
           rounds, total >> 20, keep, survivors_total, (unsigned long long)sum);
    return 0;
}

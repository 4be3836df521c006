/*
 * bench.h: helpers shared by the benchmark workloads (header only).
 *
 * Every workload uses plain malloc/free/realloc; the allocator under test is
 * chosen by LD_PRELOAD at run time, so nothing here links an allocator.
 *
 *   rng_t        xorshift64* generator, one per thread, seeded from the
 *                thread's index: the work of a thread is deterministic.
 *   size_skewed  object sizes skewed small (most <= 64 B, a few up to 4 KiB).
 *   obj_fill / obj_check
 *                write a tag into the first and last bytes of an object and
 *                check it before freeing: an allocator that hands out
 *                overlapping memory is caught (exit 1), and the tags feed the
 *                checksum the workload prints.
 *   run_threads  start n threads on fn(arg_i) and join them.
 *   die          print "FAIL ..." to stderr and exit(1).
 *
 * Every workload prints exactly one line on stdout:
 *     <name> <parameters> checksum=<16 hex digits>
 * and nothing that depends on timing, so the line is identical under every
 * allocator (the runner compares it with glibc's).
 */
#ifndef BENCH_H
#define BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UNUSED __attribute__((unused))

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2), unused));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    _exit(1);
}

/* Out of memory is a failure too: no allocator is credited for it. */
static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) die("malloc(%zu) returned NULL", n);
    return p;
}

static inline void *xrealloc(void *q, size_t n)
{
    void *p = realloc(q, n);
    if (!p) die("realloc(%zu) returned NULL", n);
    return p;
}

/* ---- random numbers ---------------------------------------------------- */

typedef struct { uint64_t s; } rng_t;

static inline uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void rng_seed(rng_t *r, uint64_t seed) { r->s = mix64(seed) | 1; }

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [0, n): n < 2^32, bias is negligible for benchmarking. */
static inline uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(((rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + rng_below(r, (uint32_t)(hi - lo + 1));
}

/* Sizes skewed small, roughly what C programs ask for:
 *   60% 1..64, 25% 65..256, 12% 257..1024, 3% 1025..4096 bytes. */
static inline size_t size_skewed(rng_t *r)
{
    uint32_t p = rng_below(r, 100);
    if (p < 60) return rng_range(r, 1, 64);
    if (p < 85) return rng_range(r, 65, 256);
    if (p < 97) return rng_range(r, 257, 1024);
    return rng_range(r, 1025, 4096);
}

/* ---- object tags ---------------------------------------------------------- */

/* Writes tag into the first and last 8 bytes (or every byte of a small
 * object). Constant work per object, so large objects are not dominated by
 * memset; overlapping objects still clobber each other's head or tail. */
static inline void obj_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *c = p;
    if (n >= 16) {
        uint64_t t2 = tag ^ n;
        memcpy(c, &tag, 8);
        memcpy(c + n - 8, &t2, 8);
    } else {
        for (size_t i = 0; i < n; i++) c[i] = (unsigned char)(tag >> (8 * (i & 7)));
    }
}

/* Returns a value derived from the tag for the checksum; dies on mismatch. */
static inline uint64_t obj_check(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *c = p;
    if (n >= 16) {
        uint64_t a, b;
        memcpy(&a, c, 8);
        memcpy(&b, c + n - 8, 8);
        if (a != tag || b != (tag ^ n))
            die("object %p size %zu corrupted (tag %016llx: head %016llx tail %016llx)",
                p, n, (unsigned long long)tag, (unsigned long long)a, (unsigned long long)b);
    } else {
        for (size_t i = 0; i < n; i++)
            if (c[i] != (unsigned char)(tag >> (8 * (i & 7))))
                die("object %p size %zu corrupted at byte %zu", p, n, i);
    }
    return mix64(tag ^ n);
}

/* ---- threads -------------------------------------------------------------- */

static void run_threads(int n, void *(*fn)(void *), void *args, size_t argsize) UNUSED;
static void run_threads(int n, void *(*fn)(void *), void *args, size_t argsize)
{
    pthread_t th[n];
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * argsize);
        if (e) die("pthread_create: %s", strerror(e));
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
}

/* ---- arguments ------------------------------------------------------------- */

static long arg_long(int argc, char **argv, int i, long def) UNUSED;
static long arg_long(int argc, char **argv, int i, long def)
{
    if (i >= argc) return def;
    char *end;
    errno = 0;
    long v = strtol(argv[i], &end, 0);
    if (errno || *end || v < 0) die("bad argument %d: '%s'", i, argv[i]);
    return v;
}

#endif

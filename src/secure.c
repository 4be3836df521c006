/*
 * secure.c: the hardened mode, GOMALLOC_SECURE=1.
 *
 * Owns: the random numbers of secure mode and the poisoning of freed
 * objects. What secure mode changes elsewhere, all behind options.secure,
 * outside the fast paths:
 *   - mcache.c: no reuse stacks (reuse_limit 0): every free goes through
 *     free_slow and the span's bitmaps, and poisons the object (here);
 *   - mspan.c: every allocation window holds one free object chosen at
 *     random among all free objects of the span (span_random_window), so
 *     the allocation order within a span cannot be predicted and every
 *     malloc takes the slow path, where the chosen object's poison is
 *     checked: a write into freed memory is reported;
 *   - arena.c: arena address hints at random addresses (a randomized heap
 *     base);
 *   - fixalloc.c: metadata chunks between inaccessible guard pages
 *     (os_linux.c, sys_alloc_guarded).
 * With the option off none of this costs anything on the fast paths: they
 * are the same instructions, because the stacks and windows they test are
 * simply empty in secure mode.
 * Go counterpart: the randomized heap base (GOEXPERIMENT=
 * randomizedheapbase64); poisoning and random order have none (Go's heap
 * has no explicit free, and allocates in address order).
 *
 * Locking: none; the random state is per thread.
 */
#include "secure.h"

#include <sys/auxv.h>

#include "mcache.h"
#include "print.h"

static __thread uint64_t rng_state __attribute__((tls_model("initial-exec")));

/* splitmix64 (Steele, Lea, Flood 2014). */
uint64_t secure_random(void) {
    if (unlikely(!rng_state)) {
        const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
        uint64_t seed = (uintptr_t)&rng_state * 0x9E3779B97F4A7C15ull;
        for (int i = 0; r && i < 16; i++) seed = (seed ^ r[i]) * 0x100000001B3ull;
        rng_state = seed | 1;
    }
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uintptr_t secure_random_address(uintptr_t lo, uintptr_t hi, uintptr_t align) {
    uintptr_t slots = (hi - lo) / align;
    return lo + (uintptr_t)(secure_random() % slots) * align;
}

void secure_poison(const mspan *s, uintptr_t p) {
    uint64_t *q = (uint64_t *)p;
    size_t n = s->elemsize / 8;
    q[0] = SECURE_POISON;
    for (size_t i = 2; i < n; i++) q[i] = SECURE_POISON;
}

void secure_check_poison(const mspan *s, uintptr_t p) {
    const uint64_t *q = (const uint64_t *)p;
    size_t n = s->elemsize / 8;
    for (size_t i = 0; i < n; i++) {
        if (i == 1 ? q[1] == free_tag(p) : q[i] == SECURE_POISON) continue;
        char what[128];
        format_buf(what, sizeof what, MISUSE_WRITE_AFTER_FREE_FMT, (size_t)(i * 8), (size_t)s->elemsize);
        report_misuse("malloc", (void *)p, what);
        return;
    }
}

/*
 * secure.h: GOMALLOC_SECURE=1, the hardened mode (secure.c).
 */
#ifndef GOMALLOC_SECURE_H
#define GOMALLOC_SECURE_H

#include "internal.h"
#include "mspan.h"

/* Word pattern of freed memory in secure mode (all words of a free object
 * but word 1, which holds the free tag). */
#define SECURE_POISON 0xdeadbeefdeadbeefull

/* A random number (per-thread state seeded from the kernel's AT_RANDOM). */
uint64_t secure_random(void);
/* A random address in [lo, hi), aligned to align (a power of two). */
uintptr_t secure_random_address(uintptr_t lo, uintptr_t hi, uintptr_t align);
/* Fill object p of s with the poison, but for word 1 (its free tag). */
void secure_poison(const mspan *s, uintptr_t p);
/* Object p of s, free and about to be handed out: report a write into it
 * since it was poisoned (op names the allocation). */
void secure_check_poison(const mspan *s, uintptr_t p);

#endif /* GOMALLOC_SECURE_H */

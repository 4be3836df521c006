/*
 * lock.h: the allocator's mutex.
 *
 * Owns: a futex-based mutex small enough to embed in every mcentral, and
 * the lock order of the whole library.
 * Go counterpart: runtime/lock_futex.go (mutex with key 0 = unlocked,
 * 1 = locked, 2 = locked with waiters).
 *
 * Why not pthread_mutex: the allocator must run before libpthread is set up,
 * inside fork handlers (where the child re-initialises every lock by storing
 * 0), and its uncontended path must be one CAS and one store.
 *
 * Lock order (take only in this order; never two mcentral locks at once):
 *   1. fallback cache lock (mcache.c: threads without a cache of their own)
 *   1b. the scavenger's run lock (scavenge.c: one claim/release at a time)
 *   2. mcentral[spanclass].lock
 *   3. the mcache list lock, then each mcache's page-cache lock
 *   4. mheap.lock
 *   5. leaf locks: each fixalloc, persistentalloc, the scavenger's state
 * The fork handlers (malloc.c) take them all in this order.
 */
#ifndef GOMALLOC_LOCK_H
#define GOMALLOC_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct mutex {
    _Atomic uint32_t key; /* 0 unlocked, 1 locked, 2 locked and contended */
} mutex;

#define MUTEX_INIT {0}

void lock_slow(mutex *m);
void unlock_slow(mutex *m);

static inline void lock(mutex *m) {
    uint32_t expected = 0;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(&m->key, &expected, 1,
                                                                 memory_order_acquire,
                                                                 memory_order_relaxed),
                         1))
        return;
    lock_slow(m);
}

static inline void unlock(mutex *m) {
    if (__builtin_expect(atomic_exchange_explicit(&m->key, 0, memory_order_release) == 2, 0))
        unlock_slow(m);
}

/* For the child after fork: only the forking thread exists; every lock is
 * free again. */
static inline void mutex_reinit(mutex *m) { atomic_store_explicit(&m->key, 0, memory_order_relaxed); }

static inline int mutex_held(mutex *m) {
    return atomic_load_explicit(&m->key, memory_order_relaxed) != 0;
}

#endif /* GOMALLOC_LOCK_H */

/*
 * lock_futex.c: the contended paths of the mutex in lock.h.
 *
 * Go counterpart: runtime/lock_futex.go. A short spin (the holder is most
 * likely running on the other core and about to release), then sleep in
 * futex_wait with the key at 2 so that unlock knows to wake someone.
 * No memory is allocated and no libc lock is taken.
 */
#include "lock.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

/* errno is the caller's: a wait that finds the value changed fails with
 * EAGAIN (or EINTR), and free must never change errno. */
static void futex_wait(_Atomic uint32_t *addr, uint32_t val) {
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
    errno = saved;
}

static void futex_wake(_Atomic uint32_t *addr) {
    int saved = errno;
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

void lock_slow(mutex *m) {
    /* Spin while the lock is held without waiters. */
    for (int i = 0; i < 100; i++) {
        uint32_t v = atomic_load_explicit(&m->key, memory_order_relaxed);
        if (v == 0) {
            uint32_t expected = 0;
            if (atomic_compare_exchange_weak_explicit(&m->key, &expected, 1, memory_order_acquire,
                                                      memory_order_relaxed))
                return;
        } else if (v == 2) {
            break;
        }
        cpu_relax();
    }
    /* Sleep. Whoever takes the lock from here on marks it contended (2), so
     * the eventual unlock wakes the next sleeper. */
    while (atomic_exchange_explicit(&m->key, 2, memory_order_acquire) != 0)
        futex_wait(&m->key, 2);
}

void unlock_slow(mutex *m) { futex_wake(&m->key); }

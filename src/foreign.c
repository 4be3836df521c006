/*
 * foreign.c: pointers gomalloc did not allocate, under GOMALLOC_FOREIGN=pass.
 *
 * Owns: finding the next allocator in the symbol lookup chain (the one
 * gomalloc interposes; under LD_PRELOAD, glibc's) and handing it the
 * pointers that lie outside every gomalloc arena: free (and the sized
 * frees and C++ delete, which end there), realloc (the block moves into
 * gomalloc) and malloc_usable_size.
 * Go counterpart: none; Go's heap never receives pointers it did not make.
 *
 * Why: a preloaded allocator can still be handed memory it did not
 * allocate: glibc's malloc reached through a dlopen handle, an allocator a
 * library carries with it, blocks made before gomalloc was loaded. By
 * default such a free is misuse, reported by malloc.c like any other bad
 * pointer. GOMALLOC_FOREIGN=pass trusts the pointer to the next allocator
 * instead, but only a pointer the arena index proves is not gomalloc's: an
 * address inside a gomalloc arena is always checked and reported. A
 * pointer nobody allocated (a stack address) is then the next allocator's
 * to judge; glibc aborts with its own message.
 *
 * Lookup: lazily, at the first foreign pointer, with dlsym(RTLD_NEXT, ...),
 * cached with relaxed atomics (racing threads find the same answer). dlsym
 * may itself call malloc or free (glibc keeps its dlerror state on the
 * heap); that is fine for malloc, and a free of a foreign pointer made from
 * inside the lookup on the same thread is dropped (leaked) instead of
 * recursing. dlsym is a weak reference, so a static link does not pull the
 * dynamic loader in: there is no next allocator then, nor when the next
 * definition is gomalloc's own, and foreign pointers are reported as
 * without the option.
 *
 * Locking: none. These paths run with no allocator lock held (dlsym takes
 * the dynamic loader's lock).
 */
#include "foreign.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "malloc.h"

#pragma weak dlsym

typedef void (*free_fn)(void *);
typedef size_t (*usable_fn)(void *);

enum { UNRESOLVED = 0, RESOLVED = 1, NO_NEXT = 2 };

static _Atomic int state;
static free_fn _Atomic next_free;
static usable_fn _Atomic next_usable;
static __thread int resolving __attribute__((tls_model("initial-exec")));

/* 1: the next allocator's functions are known; 0: there is none; -1: this
 * thread is inside the lookup (a nested call must not recurse). */
static int resolve(void) {
    int st = atomic_load_explicit(&state, memory_order_acquire);
    if (likely(st == RESOLVED)) return 1;
    if (st == NO_NEXT) return 0;
    if (resolving) return -1;
    if (!dlsym) {
        atomic_store_explicit(&state, NO_NEXT, memory_order_release);
        return 0;
    }
    resolving = 1;
    void *f = dlsym(RTLD_NEXT, "free");
    void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
    resolving = 0;
    /* Our own definitions are no next allocator (this library loaded
     * twice, or a lookup that wrapped around). */
    if (f == (void *)free) f = NULL;
    if (u == (void *)malloc_usable_size) u = NULL;
    if (!f) {
        atomic_store_explicit(&state, NO_NEXT, memory_order_release);
        return 0;
    }
    atomic_store_explicit(&next_free, (free_fn)f, memory_order_relaxed);
    atomic_store_explicit(&next_usable, (usable_fn)u, memory_order_relaxed);
    atomic_store_explicit(&state, RESOLVED, memory_order_release);
    return 1;
}

bool foreign_free(void *p) {
    int r = resolve();
    if (r < 0) return true; /* inside dlsym: leak it */
    if (r == 0) return false;
    atomic_load_explicit(&next_free, memory_order_relaxed)(p);
    return true;
}

bool foreign_usable_size(const void *p, size_t *out) {
    int r = resolve();
    usable_fn u = r > 0 ? atomic_load_explicit(&next_usable, memory_order_relaxed) : NULL;
    if (!u) return false;
    *out = u((void *)p);
    return true;
}

bool foreign_realloc(void *p, size_t size, void **out) {
    size_t old;
    if (!foreign_usable_size(p, &old)) return false;
    void *q = malloc_inline(size);
    *out = q;
    if (!q) return true; /* ENOMEM; the old block stays valid */
    memcpy(q, p, old < size ? old : size);
    atomic_load_explicit(&next_free, memory_order_relaxed)(p);
    return true;
}

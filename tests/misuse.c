/*
 * misuse.c: every kind of misuse of the C API that gomalloc detects, one
 * test each, run in a child process by the harness in misuse.h: by default
 * the child must die of SIGABRT after exactly one report line; with
 * GOMALLOC_ON_ERROR=warn it must print that line with " (ignored)" and go
 * on with a working heap. The expected line is exact: operation, pointer,
 * and the text of src/print.h. Kinds gomalloc cannot catch are here too,
 * pinned down as the documented limits they are (README.md, "Misuse").
 *
 * Runs under LD_PRELOAD=build/libgomalloc.so (tests/suites/25-misuse.sh);
 * MISUSE_TABLE=1 records what any allocator does instead
 * (tests/misuse_table.sh). C++ delete is in misuse_cxx.cc, and
 * GOMALLOC_FOREIGN=pass in misuse_foreign.c.
 *
 * Layout facts the kinds rely on (gomalloc's, documented in the sources):
 * spans are 8 KiB pages, page aligned, inside 64 MiB aligned arenas; a
 * 64-byte span is one page of 128 objects, a 48-byte span one page of 170
 * objects and a 32-byte tail; a new thread's first span is the lowest free
 * page of the lowest partly free 64-page block (its page cache); spans of
 * 64 pages come from the page heap, lowest address first.
 */
#include "misuse.h"

#include <dlfcn.h>

#define ARENA ((uintptr_t)64 << 20)
#define PAGE ((uintptr_t)8192)

static char static_buf[64];

/* glibc's own function name, reached through a handle to libc.so.6: a
 * lookup on a handle searches that library (and its dependencies), so it is
 * not interposed by a preloaded allocator. */
static void *glibc_sym(const char *name) {
    void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

static free_sized_fn get_free_sized(void) {
    free_sized_fn f = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    if (!f) mu_not_applicable("the C library has no free_sized");
    return f;
}

static void *free_thread(void *p) {
    free(p);
    return NULL;
}

/* ---- pointers gomalloc never returned ---------------------------------- */

MISUSE(free_stack) {
    char buf[64];
    void *p = mu_launder(buf);
    mu_expect("free", p, T_NOT_OURS);
    free(p);
}

MISUSE(free_static) {
    void *p = mu_launder(static_buf);
    mu_expect("free", p, T_NOT_OURS);
    free(p);
}

MISUSE(free_wild_low) {
    void *p = mu_launder((void *)0x10);
    mu_expect("free", p, T_NOT_OURS);
    free(p);
}

/* An address inside a gomalloc arena that no span ever covered: the last
 * page of the arena of a fresh block (the test heap is far smaller). */
MISUSE(free_heap_unused_pages) {
    void *a = malloc(64);
    void *p = mu_launder((void *)(((uintptr_t)a & ~(ARENA - 1)) + ARENA - 4096));
    mu_expect("free", p, T_UNUSED_HEAP);
    free(p);
}

/* Another allocator of the program's own, carving an mmap region. */
MISUSE(free_other_allocator_mmap) {
    char *region = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) mu_not_applicable("mmap failed");
    void *p = region + 64;
    mu_expect("free", p, T_NOT_OURS);
    free(p);
}

/* glibc's malloc, called directly while gomalloc is the process allocator. */
MISUSE(free_other_allocator_glibc) {
    void *(*gmalloc)(size_t) = (void *(*)(size_t))glibc_sym("malloc");
    if (!gmalloc) mu_not_applicable("no handle to libc.so.6");
    if ((void *)gmalloc == dlsym(RTLD_DEFAULT, "malloc")) mu_not_applicable("glibc is the process allocator");
    void *p = gmalloc(100);
    mu_expect("free", p, T_NOT_OURS);
    free(p);
}

/* ---- interior pointers -------------------------------------------------- */

MISUSE(free_interior_small) {
    char *a = malloc(100);
    void *p = a + 16;
    mu_expectf("free", p, T_INTERIOR, (size_t)16, malloc_usable_size(a), (void *)a);
    free(p);
}

MISUSE(free_interior_large) {
    char *a = malloc(200000);
    void *p = a + 4096;
    mu_expectf("free", p, T_INTERIOR, (size_t)4096, malloc_usable_size(a), (void *)a);
    free(p);
}

/* The 32 bytes after the 170th 48-byte object of a page. */
MISUSE(free_past_last_object) {
    char *a = malloc(48);
    void *p = mu_launder((void *)(((uintptr_t)a & ~(PAGE - 1)) + 170 * 48));
    mu_expect("free", p, T_PAST_LAST);
    free(p);
}

/* ---- double frees, one thread ------------------------------------------- */

/* The object is on the thread's reuse list. */
MISUSE(double_free_small) {
    void *p = malloc(64);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* malloc(8): the smallest request, a 16-byte object like malloc(1) to malloc(15). */
MISUSE(double_free_small_8_bytes) {
    void *p = malloc(8);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* Other allocations and frees in between: the reuse list overflowed and
 * gave the object back to its span's bitmap. */
MISUSE(double_free_small_after_other_allocations) {
    static void *other[200];
    void *p = malloc(64);
    for (int i = 0; i < 200; i++) other[i] = malloc(64);
    free(p);
    for (int i = 0; i < 150; i++) free(other[i]);
    for (int i = 0; i < 20; i++) other[i] = malloc(64);
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* Leaves a 16-byte object freed by this thread and back in its allocation
 * window (its span was rescanned), free but not handed out again: two
 * adjacent objects of one 64-object word are freed, the reuse stack is
 * overflowed so that both go back to their span's bitmap, and allocation
 * goes on until the lower one comes back; the window hands out the lowest
 * free slot first. */
static void *freed_into_window(void) {
    enum { N = 3000, STACK = 64 /* REUSE_MAX */ };
    static void *blk[N];
    for (int i = 0; i < N; i++) blk[i] = malloc(16);
    int i;
    for (i = N - 2; i >= STACK; i--)
        if ((char *)blk[i + 1] == (char *)blk[i] + 16 && (uintptr_t)blk[i] >> 10 == (uintptr_t)blk[i + 1] >> 10) break;
    if (i < STACK) {
        mu_not_arranged("no two adjacent 16-byte blocks");
        i = N - 2;
    }
    void *p0 = blk[i], *p = blk[i + 1];
    free(p);
    free(p0);
    for (int k = 0; k < STACK; k++) free(blk[k]); /* the stack overflows: p and p0 go to the bitmap */
    int back = 0;
    for (int k = 0; k < 200000 && !back; k++) {
        void *q = malloc(16);
        if (q == p) break;
        back = q == p0;
    }
    if (!back) mu_not_arranged("the lower block did not come back first");
    return p;
}

MISUSE(double_free_small_in_allocation_window) {
    void *p = freed_into_window();
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* The owner freed the object and it sits free in the owner's window: its
 * free tag tells another thread at once. */
MISUSE(double_free_by_other_thread_into_owner_window) {
    void *p = freed_into_window();
    mu_expect("free", p, T_DOUBLE_FREE);
    mu_in_thread(free_thread, p);
}

/* LIMIT: the same, but the owner hands the object out again first: the
 * stray free is then the free of the new allocation (reused memory, see
 * the limits), silent, and what is reported is the owner's own later free. */
MISUSE(double_free_by_other_thread_after_reuse_limit) {
    void *p = freed_into_window();
    void *again = malloc(16);
    if (again != p) mu_not_arranged("the window did not hand the object out again");
    mu_in_thread(free_thread, p); /* silent: frees the live object */
    mu_expect("free", again, T_DOUBLE_FREE_REMOTE);
    free(mu_launder(again));
}

/* LIMIT: the program wrote into the object after freeing it, over the
 * word that marks objects on the thread's reuse list; the second free then
 * looks like a first one and the object is handed out twice. What is
 * reported is the free of the second copy. */
MISUSE(double_free_after_write_to_freed_object_limit) {
    long *p = malloc(64);
    free(p);
    ((long *volatile)mu_launder(p))[1] = 0; /* use after free */
    free(mu_launder(p));                    /* silent */
    long *q1 = malloc(64), *q2 = malloc(64);
    if (q1 != p || q2 != p) mu_not_arranged("the object was not handed out twice");
    free(q1);
    mu_expect("free", q2, T_DOUBLE_FREE);
    free(mu_launder(q2));
}

MISUSE(double_free_large) {
    void *p = malloc(200000);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* ---- double frees across threads ----------------------------------------- */

/* The owner freed it (its reuse list); another thread frees it again. */
MISUSE(double_free_by_other_thread) {
    void *p = malloc(64);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    mu_in_thread(free_thread, p);
}

/* Another thread freed it; the owner frees it again. */
MISUSE(double_free_by_owner_after_other_thread) {
    void *p = malloc(64);
    mu_in_thread(free_thread, p);
    mu_expect("free", p, T_DOUBLE_FREE_REMOTE);
    free(mu_launder(p));
}

/* Two threads that do not own the span free it. */
MISUSE(double_free_by_two_other_threads) {
    void *p = malloc(64);
    mu_in_thread(free_thread, p);
    mu_expect("free", p, T_DOUBLE_FREE);
    mu_in_thread(free_thread, p);
}

/* The owner exited: its span, with one object left, is unowned (mcentral). */
static void *alloc_two_free_one(void *arg) {
    void **out = arg;
    out[0] = malloc(64);
    out[1] = malloc(64);
    free(out[0]);
    return NULL;
}
MISUSE(double_free_in_unowned_span) {
    void *pq[2];
    mu_in_thread(alloc_two_free_one, pq);
    mu_expect("free", pq[0], T_DOUBLE_FREE);
    free(mu_launder(pq[0]));
}

MISUSE(double_free_large_by_other_thread) {
    void *p = malloc(200000);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    mu_in_thread(free_thread, p);
}

/* ---- double frees after the span died ----------------------------------- */

/* A thread allocates two 64-byte objects in its first span, frees both and
 * exits: the span is empty and its page goes back to the heap. Returns the
 * second object (64 bytes into the page). */
static void *two_then_exit(void *arg) {
    void **out = arg;
    out[0] = malloc(64);
    out[1] = malloc(64);
    free(out[0]);
    free(out[1]);
    return NULL;
}
static void *dead_span_object(void) {
    void *pq[2];
    mu_in_thread(two_then_exit, pq);
    if ((uintptr_t)pq[1] % PAGE != 64) mu_not_arranged("the thread's objects were not the first of a fresh page");
    return pq[1];
}

/* Nothing reused the page yet. */
MISUSE(double_free_after_span_released) {
    void *p = dead_span_object();
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

/* The page now lies inside a large object. */
MISUSE(double_free_after_span_reused_by_large_object) {
    void *p = dead_span_object();
    char *big = NULL;
    for (int k = 0; k < 200; k++) {
        char *b = malloc(512 << 10);
        if ((char *)p >= b && (char *)p < b + malloc_usable_size(b)) {
            big = b;
            break;
        }
    }
    if (!big) {
        mu_not_arranged("no large object covered the page");
        big = p;
    }
    mu_expectf("free", p, T_INTERIOR, (size_t)((char *)p - big), malloc_usable_size(big), (void *)big);
    free(mu_launder(p));
}

/* The page now holds a span of 32-byte objects (a new thread's first span)
 * in which the old pointer is the third object, still free. */
struct reuse_arg {
    void *p;   /* the old pointer */
    void *a[3];
    int take;  /* how many 32-byte objects to allocate */
    int owner_frees;
};
static void *reuse_by_32(void *arg) {
    struct reuse_arg *r = arg;
    for (int i = 0; i < r->take; i++) r->a[i] = malloc(32);
    if ((char *)r->a[0] != (char *)r->p - 64) mu_not_arranged("the new thread's span is not on the old page");
    if (r->owner_frees) free(mu_launder(r->p));
    return NULL;
}
MISUSE(double_free_after_span_reused_free_object) {
    struct reuse_arg r = {.p = dead_span_object(), .take = 2, .owner_frees = 1};
    mu_expect("free", r.p, T_DOUBLE_FREE);
    mu_in_thread(reuse_by_32, &r);
}

/* LIMIT: the old pointer names a live object of the new span (the third
 * 32-byte object). The stray free cannot be told from a good one and frees
 * it; what is reported is the later, legitimate free of that object. */
MISUSE(double_free_after_span_reused_live_object_limit) {
    struct reuse_arg r = {.p = dead_span_object(), .take = 3};
    mu_in_thread(reuse_by_32, &r);
    if (r.a[2] != r.p) mu_not_arranged("the old pointer is not the new third object");
    free(mu_launder(r.p)); /* the stray second free: silent */
    mu_expect("free", r.a[2], T_DOUBLE_FREE);
    free(mu_launder(r.a[2])); /* the owner's own free */
}

/* ---- sized frees ---------------------------------------------------------- */

MISUSE(free_sized_wrong_size_small) {
    free_sized_fn fs = get_free_sized();
    void *p = malloc(100);
    mu_expectf("free_sized", p, T_SIZE, (size_t)200, malloc_usable_size(p));
    fs(p, 200);
}

MISUSE(free_sized_wrong_size_large) {
    free_sized_fn fs = get_free_sized();
    void *p = malloc(200000);
    mu_expectf("free_sized", p, T_SIZE, (size_t)100000, malloc_usable_size(p));
    fs(p, 100000);
}

MISUSE(free_aligned_sized_wrong_size) {
    free_aligned_sized_fn fas = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    if (!fas) mu_not_applicable("the C library has no free_aligned_sized");
    void *p = aligned_alloc(64, 100);
    mu_expectf("free_aligned_sized", p, T_SIZE_ALIGN, (size_t)1000, (size_t)64, malloc_usable_size(p));
    fas(p, 64, 1000);
}

MISUSE(free_sized_double_free) {
    free_sized_fn fs = get_free_sized();
    void *p = malloc(64);
    free(p);
    mu_expect("free_sized", p, T_DOUBLE_FREE);
    fs(mu_launder(p), 64);
}

MISUSE(free_sized_interior) {
    free_sized_fn fs = get_free_sized();
    char *a = malloc(100);
    void *p = a + 16;
    mu_expectf("free_sized", p, T_INTERIOR, (size_t)16, malloc_usable_size(a), (void *)a);
    fs(p, 84);
}

MISUSE(free_sized_stack) {
    free_sized_fn fs = get_free_sized();
    char buf[64];
    void *p = mu_launder(buf);
    mu_expect("free_sized", p, T_NOT_OURS);
    fs(p, sizeof buf);
}

/* ---- realloc ----------------------------------------------------------------- */

MISUSE(realloc_freed_small) {
    void *p = malloc(64);
    free(p);
    mu_expect("realloc", p, T_USE_AFTER_FREE);
    errno = 0;
    void *q = realloc(mu_launder(p), 100);
    mu_result(q == NULL && errno == EINVAL, "realloc returned %p, errno %d (want NULL, EINVAL)", q, errno);
}

MISUSE(realloc_freed_large) {
    void *p = malloc(200000);
    free(p);
    mu_expect("realloc", p, T_USE_AFTER_FREE);
    errno = 0;
    void *q = realloc(mu_launder(p), 300000);
    mu_result(q == NULL && errno == EINVAL, "realloc returned %p, errno %d (want NULL, EINVAL)", q, errno);
}

MISUSE(realloc_interior) {
    char *a = malloc(100);
    void *p = a + 16;
    mu_expectf("realloc", p, T_INTERIOR, (size_t)16, malloc_usable_size(a), (void *)a);
    void *q = realloc(p, 200);
    mu_result(q == NULL, "realloc returned %p (want NULL)", q);
}

MISUSE(realloc_stack) {
    char buf[64];
    void *p = mu_launder(buf);
    mu_expect("realloc", p, T_NOT_OURS);
    void *q = realloc(p, 200);
    mu_result(q == NULL, "realloc returned %p (want NULL)", q);
}

/* realloc(p, 0) frees: a double free. */
MISUSE(realloc_zero_double_free) {
    void *p = malloc(64);
    free(p);
    mu_expect("realloc", p, T_DOUBLE_FREE);
    void *q = realloc(mu_launder(p), 0);
    mu_result(q == NULL, "realloc returned %p (want NULL)", q);
}

/* ---- malloc_usable_size --------------------------------------------------- */

MISUSE(usable_size_freed) {
    void *p = malloc(64);
    free(p);
    mu_expect("malloc_usable_size", p, T_USE_AFTER_FREE);
    size_t n = malloc_usable_size(mu_launder(p));
    mu_result(n == 0, "returned %zu (want 0)", n);
}

MISUSE(usable_size_freed_large) {
    void *p = malloc(200000);
    free(p);
    mu_expect("malloc_usable_size", p, T_USE_AFTER_FREE);
    size_t n = malloc_usable_size(mu_launder(p));
    mu_result(n == 0, "returned %zu (want 0)", n);
}

MISUSE(usable_size_interior) {
    char *a = malloc(100);
    void *p = a + 16;
    mu_expectf("malloc_usable_size", p, T_INTERIOR, (size_t)16, malloc_usable_size(a), (void *)a);
    size_t n = malloc_usable_size(p);
    mu_result(n == 0, "returned %zu (want 0)", n);
}

MISUSE(usable_size_stack) {
    char buf[64];
    void *p = mu_launder(buf);
    mu_expect("malloc_usable_size", p, T_NOT_OURS);
    size_t n = malloc_usable_size(p);
    mu_result(n == 0, "returned %zu (want 0)", n);
}

MISUSE(usable_size_other_allocator_glibc) {
    void *(*gmalloc)(size_t) = (void *(*)(size_t))glibc_sym("malloc");
    if (!gmalloc) mu_not_applicable("no handle to libc.so.6");
    if ((void *)gmalloc == dlsym(RTLD_DEFAULT, "malloc")) mu_not_applicable("glibc is the process allocator");
    void *p = gmalloc(100);
    mu_expect("malloc_usable_size", p, T_NOT_OURS);
    size_t n = malloc_usable_size(p);
    mu_result(n == 0, "returned %zu (want 0)", n);
}

/* ---- the report itself ----------------------------------------------------- */

/* free must not change errno, even when it reports and goes on. */
MISUSE(warn_keeps_errno) {
    void *p = malloc(64);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    errno = 1234;
    free(mu_launder(p));
    int e = errno;
    mu_result(e == 1234, "errno %d after the ignored free (want 1234)", e);
}

TEST_MAIN()

/*
 * misuse_foreign.c: GOMALLOC_FOREIGN=pass (src/foreign.c), for real.
 *
 * Run with LD_PRELOAD=build/libgomalloc.so GOMALLOC_FOREIGN=pass
 * (tests/suites/25-misuse.sh). The foreign memory is glibc's: its malloc,
 * calloc and aligned_alloc reached through a handle to libc.so.6, which a
 * preloaded allocator does not interpose. Those blocks are then given to
 * the process's free, realloc, malloc_usable_size and free_sized, which are
 * gomalloc's; gomalloc must pass them to glibc. Leaks are measured with
 * glibc's own mallinfo2 (bytes in use in its heap and in its mmapped
 * blocks), which must come back to where they started.
 *
 * Pointers inside a gomalloc arena are never passed on, and misuse of
 * gomalloc's own memory is reported as usual (the same exact lines as
 * misuse.c). The default mode (report and abort) is in misuse.c
 * (free_other_allocator_glibc); the static link, where there is no next
 * allocator, in tests/static/static_link.c.
 */
#include "misuse.h"

#include <dlfcn.h>
#include <malloc.h>

#define ARENA ((uintptr_t)64 << 20)

static void *glibc_sym(const char *name) {
    void *h = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    return h ? dlsym(h, name) : NULL;
}

static void *(*g_malloc)(size_t);
static void *(*g_calloc)(size_t, size_t);
static void *(*g_aligned_alloc)(size_t, size_t);
static size_t (*g_usable)(void *);
static struct mallinfo2 (*g_mallinfo2)(void);
static size_t (*gm_usable)(const void *);

/* Everything the tests need, or a failure. */
static int setup(void) {
    const char *f = getenv("GOMALLOC_FOREIGN");
    CHECKR(f && !strcmp(f, "pass"), "run with GOMALLOC_FOREIGN=pass");
    CHECKR(tl_gomalloc_active(), "gomalloc is not loaded");
    g_malloc = (void *(*)(size_t))glibc_sym("malloc");
    g_calloc = (void *(*)(size_t, size_t))glibc_sym("calloc");
    g_aligned_alloc = (void *(*)(size_t, size_t))glibc_sym("aligned_alloc");
    g_usable = (size_t(*)(void *))glibc_sym("malloc_usable_size");
    g_mallinfo2 = (struct mallinfo2(*)(void))glibc_sym("mallinfo2");
    gm_usable = (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "gm_usable_size");
    CHECKR(g_malloc && g_calloc && g_aligned_alloc && g_usable && g_mallinfo2 && gm_usable, "symbols missing");
    CHECKR((void *)g_malloc != dlsym(RTLD_DEFAULT, "malloc"), "the libc.so.6 handle gave the interposed malloc");
    return 1;
}

/* Bytes glibc has handed out and not had back. Its per-thread cache
 * counts as in use: at most 7 chunks of each of 64 sizes up to 1 KiB, so
 * up to TCACHE_SLACK more after a test than before is not a leak (every
 * test frees some 10^4 to 10^5 blocks of 13 KiB on average). */
#define TCACHE_SLACK ((size_t)256 << 10)
static size_t glibc_in_use(void) {
    struct mallinfo2 mi = g_mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static size_t pick_size(uint64_t *rs) {
    uint64_t r = tl_rand(rs);
    if (r % 64 == 0) return 200000 + r % 800000; /* glibc mmaps these */
    if (r % 8 == 0) return 1 + r % 60000;
    return 1 + r % 600;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 97) p[i] = (unsigned char)(seed + i);
}
static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 97)
        if (p[i] != (unsigned char)(seed + i)) return 0;
    return 1;
}

/* free() of glibc blocks, many times, some kept alive for a while: no
 * report, no crash, and glibc gets every byte back. */
TEST(pass_free_glibc_blocks) {
    if (!setup()) return;
    size_t before = glibc_in_use();
    enum { LIVE = 64 };
    void *live[LIVE] = {0};
    uint64_t rs = 1;
    for (int i = 0; i < 200000; i++) {
        size_t n = pick_size(&rs);
        unsigned char *p = i % 3 == 0 ? g_calloc(1, n) : g_malloc(n);
        CHECK(p != NULL);
        fill(p, n, (unsigned)i);
        unsigned k = (unsigned)(tl_rand(&rs) % LIVE);
        free(live[k]);
        live[k] = p;
    }
    for (int k = 0; k < LIVE; k++) free(live[k]);
    size_t after = glibc_in_use();
    CHECKF(after <= before + TCACHE_SLACK, "glibc has %zu bytes in use after, %zu before: blocks leaked", after,
           before);
    struct mallinfo2 mi = g_mallinfo2();
    CHECKF(mi.arena < (64u << 20), "glibc's heap grew to %zu bytes: freed blocks were not reused", mi.arena);
}

/* realloc() of a glibc block moves it into gomalloc, with its contents;
 * glibc gets the old block back. Growing, shrinking, and realloc(p, 0). */
TEST(pass_realloc_moves_into_gomalloc) {
    if (!setup()) return;
    size_t before = glibc_in_use();
    uint64_t rs = 2;
    for (int i = 0; i < 50000; i++) {
        size_t n = pick_size(&rs), m = pick_size(&rs);
        unsigned char *p = g_malloc(n);
        CHECK(p != NULL);
        size_t old_usable = g_usable(p);
        fill(p, old_usable, (unsigned)i);
        unsigned char *q = realloc(p, m);
        CHECKF(q != NULL, "realloc(glibc block of %zu, %zu) failed", n, m);
        size_t keep = old_usable < m ? old_usable : m;
        CHECKF(same(q, keep, (unsigned)i), "contents lost moving %zu -> %zu", n, m);
        CHECKF(gm_usable(q) >= m, "the new block is not gomalloc's"); /* would abort if foreign */
        if (i % 100 == 0) {
            CHECK(realloc(q, 0) == NULL); /* gomalloc's block: freed */
            unsigned char *r = g_malloc(n);
            CHECK(realloc(r, 0) == NULL); /* glibc's block: passed on */
        } else {
            free(q);
        }
    }
    size_t after = glibc_in_use();
    CHECKF(after <= before + TCACHE_SLACK, "glibc has %zu bytes in use after, %zu before: old blocks leaked", after,
           before);
}

TEST(pass_usable_size_is_glibcs) {
    if (!setup()) return;
    uint64_t rs = 3;
    for (int i = 0; i < 10000; i++) {
        size_t n = pick_size(&rs);
        void *p = g_malloc(n);
        size_t want = g_usable(p), got = malloc_usable_size(p);
        CHECKF(got == want, "malloc_usable_size of a glibc block of %zu: %zu, glibc says %zu", n, got, want);
        free(p);
    }
}

/* free_sized, free_aligned_sized and C++ delete (its unsized and sized
 * operators) of glibc blocks: the size cannot be checked; passed on. */
TEST(pass_sized_frees_and_delete) {
    if (!setup()) return;
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    void (*del)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZdlPv");
    void (*del_sized)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "_ZdlPvm");
    CHECK(fs && fas && del && del_sized);
    size_t before = glibc_in_use();
    uint64_t rs = 4;
    for (int i = 0; i < 20000; i++) {
        size_t n = pick_size(&rs);
        fs(g_malloc(n), n);
        fas(g_aligned_alloc(64, n), 64, n);
        del(g_malloc(n));
        del_sized(g_malloc(n), n);
    }
    size_t after = glibc_in_use();
    CHECKF(after <= before + TCACHE_SLACK, "glibc has %zu bytes in use after, %zu before", after, before);
}

/* Threads that all meet their first foreign pointer at once (the lazy
 * lookup races), mixing glibc and gomalloc blocks. */
static void *mixed_worker(void *arg) {
    uint64_t rs = (uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        size_t n = pick_size(&rs);
        void *a = g_malloc(n), *b = malloc(n);
        if (!a || !b) return (void *)"allocation failed";
        memset(a, 1, n);
        memset(b, 2, n);
        if (tl_rand(&rs) & 1) {
            free(a);
            free(b);
        } else {
            free(b);
            a = realloc(a, n + 10);
            if (!a) return (void *)"realloc failed";
            free(a);
        }
    }
    return NULL;
}

/* In a fresh child, so that the first foreign pointers are the threads'. */
static void threads_child(void *arg) {
    (void)arg;
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++) pthread_create(&t[i], NULL, mixed_worker, (void *)(i + 10));
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) _exit(9);
    }
    _exit(0);
}
TEST(pass_from_many_threads) {
    if (!setup()) return;
    char err[2048];
    int status = tl_run_child(threads_child, NULL, err, sizeof err, 60);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x, stderr: %s", status, err);
    CHECKF(err[0] == 0, "stderr: %s", err);
}

/* A pointer no allocator made, outside gomalloc's arenas, goes to glibc's
 * free, which judges it: an abort with glibc's message, not gomalloc's. A
 * zero chunk header makes glibc's answer deterministic. */
static void free_stack_child(void *arg) {
    (void)arg;
    long buf[8] __attribute__((aligned(16))) = {0};
    free(mu_launder(&buf[2]));
    _exit(0);
}
TEST(pass_stack_pointer_goes_to_glibc) {
    if (!setup()) return;
    char err[2048];
    int status = tl_run_child(free_stack_child, NULL, err, sizeof err, 30);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, stderr: %s", status, err);
    CHECKF(strstr(err, "free(): invalid pointer") && !strstr(err, "gomalloc"), "stderr: %s", err);
}

/* Inside a gomalloc arena nothing is passed on: still gomalloc's reports. */
MISUSE(pass_heap_address_still_reported) {
    void *a = malloc(64);
    void *p = mu_launder((void *)(((uintptr_t)a & ~(ARENA - 1)) + ARENA - 4096));
    mu_expect("free", p, T_UNUSED_HEAP);
    free(p);
}

MISUSE(pass_double_free_still_reported) {
    void *p = malloc(64);
    free(p);
    mu_expect("free", p, T_DOUBLE_FREE);
    free(mu_launder(p));
}

MISUSE(pass_interior_still_reported) {
    char *a = malloc(200000);
    void *p = a + 8192;
    mu_expectf("realloc", p, T_INTERIOR, (size_t)8192, malloc_usable_size(a), (void *)a);
    void *q = realloc(p, 10);
    mu_result(q == NULL, "realloc returned %p", q);
}

TEST_MAIN()

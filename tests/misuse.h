/*
 * misuse.h: the harness of the misuse tests (tests/misuse.c,
 * tests/misuse_cxx.cc, tests/misuse_foreign.c), on top of testlib.h.
 *
 * A misuse kind is written as
 *
 *   MISUSE(double_free_small) {
 *       void *p = malloc(64);
 *       free(p);
 *       mu_expect("free", p, "double free (object already freed)");
 *       free(p);
 *   }
 *
 * It sets the situation up, names the report gomalloc must print
 * (mu_expect: operation, pointer, what is wrong; mu_expectf formats the
 * what), then commits the misuse. Each kind is one test, run in a forked
 * child with stderr captured; the parent then checks, by mode:
 *
 *   abort (default)   the child died of SIGABRT and its stderr is exactly
 *                     "gomalloc: OP(0xPTR): WHAT\n";
 *   warn              (GOMALLOC_ON_ERROR=warn in the environment) stderr is
 *                     exactly "gomalloc: OP(0xPTR): WHAT (ignored)\n", the
 *                     child went on, and a heap check afterwards passed
 *                     (thousands of blocks in two threads, contents
 *                     verified, no block handed out twice); exit status 0;
 *   table             (MISUSE_TABLE=1) nothing is asserted: each kind prints
 *                     "ROW name|outcome", what happened (signal, first line
 *                     of stderr, heap check). tests/misuse_table.sh runs
 *                     this under glibc and under gomalloc for README.md.
 *
 * A kind that needs a particular heap layout (a page reused by a given
 * span) checks it got it and calls mu_not_arranged(why) otherwise: a
 * failure under gomalloc, which is deterministic here; in table mode the
 * kind goes on and the outcome says the layout was not reached.
 * mu_not_applicable(why) marks a kind that cannot run under this allocator
 * (free_sized under glibc 2.36), again a failure under gomalloc.
 */
#ifndef GOMALLOC_MISUSE_H
#define GOMALLOC_MISUSE_H

#include "testlib.h"

#include <ctype.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/mman.h>

/* Freeing what is not a heap block, and freeing twice, is the point here. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

/* What the child tells the parent, in a shared page. */
struct mu_shared {
    char expect[512];     /* the exact report line, without the newline */
    char note[256];       /* not arranged / not applicable: why */
    char heap[256];       /* heap check failure */
    char result[256];     /* what the misused call returned, if wrong (mu_result) */
    int arranged;         /* 0 = mu_not_arranged was called */
};

static struct mu_shared *mu_sh;
static int mu_mode; /* 0 abort, 1 warn, 2 table */

enum { MU_EXIT_OK = 0, MU_EXIT_RETURNED = 3, MU_EXIT_HEAP = 4, MU_EXIT_NOT_ARRANGED = 7, MU_EXIT_NA = 8 };

/* Keeps the compiler from seeing through pointers (and warning about
 * freeing a stack address, which is the point). */
static void *volatile mu_launder_slot;
static inline void *mu_launder(const void *p) {
    mu_launder_slot = (void *)p;
    return mu_launder_slot;
}

static inline void mu_expect(const char *op, const void *ptr, const char *what) {
    snprintf(mu_sh->expect, sizeof mu_sh->expect, "gomalloc: %s(%p): %s", op, ptr, what);
}

__attribute__((format(printf, 3, 4))) static inline void mu_expectf(const char *op, const void *ptr,
                                                                    const char *fmt, ...) {
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    mu_expect(op, ptr, what);
}

/* The texts of src/print.h, copied: the tests pin them down. */
#define T_NOT_OURS "pointer not allocated by gomalloc"
#define T_UNUSED_HEAP "pointer not allocated by gomalloc (unused heap pages)"
#define T_FREED_MEMORY "pointer into freed memory"
#define T_DOUBLE_FREE "double free (object already freed)"
#define T_DOUBLE_FREE_REMOTE "double free (object already freed by another thread)"
#define T_DOUBLE_FREE_LATE "double free (object already freed; found later by the thread owning its span)"
#define T_USE_AFTER_FREE "use after free (object already freed)"
#define T_PAST_LAST "invalid pointer (past the last object of its span)"
#define T_INTERIOR "interior pointer (%zu bytes into the %zu-byte object at %p)"
#define T_SIZE "size %zu does not match the allocation (usable size %zu)"
#define T_SIZE_ALIGN "size %zu and alignment %zu do not match the allocation (usable size %zu)"

/* Check what an ignored call returned (warn mode; recorded in table mode). */
__attribute__((format(printf, 2, 3))) static inline void mu_result(int ok, const char *fmt, ...) {
    if (ok || mu_sh->result[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mu_sh->result, sizeof mu_sh->result, fmt, ap);
    va_end(ap);
}

static inline void mu_not_arranged(const char *why) {
    snprintf(mu_sh->note, sizeof mu_sh->note, "%s", why);
    mu_sh->arranged = 0;
    if (mu_mode != 2) _exit(MU_EXIT_NOT_ARRANGED);
}

static inline void mu_not_applicable(const char *why) {
    snprintf(mu_sh->note, sizeof mu_sh->note, "%s", why);
    _exit(MU_EXIT_NA);
}

/* Run fn in a new thread and wait for it. */
static inline void mu_in_thread(void *(*fn)(void *), void *arg) {
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0) _exit(20);
    pthread_join(t, NULL);
}

/* ---- heap check: does the allocator still work after the misuse? ------- */

struct mu_blk {
    unsigned char *p;
    size_t n;
};

static int mu_blk_cmp(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const struct mu_blk *)a)->p, y = (uintptr_t)((const struct mu_blk *)b)->p;
    return x < y ? -1 : x > y;
}

/* NULL if fine, else what is wrong (static text). */
static const char *mu_heap_round(unsigned seed) {
    enum { N = 3000 };
    static struct mu_blk b[2][N]; /* one per thread */
    struct mu_blk *blk = b[seed & 1];
    uint64_t rs = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < N; i++) {
        uint64_t r = tl_rand(&rs);
        size_t n = r % 16 == 0 ? 33000 + r % 100000 : 1 + r % 2000;
        blk[i].p = (unsigned char *)malloc(n);
        blk[i].n = n;
        if (!blk[i].p) return "malloc returned NULL";
        memset(blk[i].p, (int)(i * 7 + seed) & 0xff, n);
    }
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < blk[i].n; k += 61)
            if (blk[i].p[k] != ((i * 7 + seed) & 0xff)) return "a block's contents changed";
    qsort(blk, N, sizeof blk[0], mu_blk_cmp);
    for (int i = 1; i < N; i++)
        if (blk[i - 1].p + blk[i - 1].n > blk[i].p) return "two live blocks overlap (one handed out twice)";
    for (int i = 0; i < N; i++) free(blk[i].p);
    return NULL;
}

static void *mu_heap_thread(void *arg) { return (void *)mu_heap_round((unsigned)(uintptr_t)arg); }

static const char *mu_heap_check(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, mu_heap_thread, (void *)(uintptr_t)3) != 0) return "pthread_create failed";
    const char *a = mu_heap_round(2);
    void *r;
    pthread_join(t, &r);
    if (a) return a;
    if (r) return (const char *)r;
    return mu_heap_round(4);
}

/* ---- running a kind --------------------------------------------------- */

static void mu_child(void *arg) {
    void (*fn)(void) = (void (*)(void))arg;
    fn();
    /* Still alive: warn mode, table mode, or a kind gomalloc cannot catch. */
    const char *bad = mu_heap_check();
    if (bad) {
        snprintf(mu_sh->heap, sizeof mu_sh->heap, "%s", bad);
        _exit(MU_EXIT_HEAP);
    }
    _exit(mu_mode == 0 ? MU_EXIT_RETURNED : MU_EXIT_OK);
}

/* The first line of s, hex addresses shortened to 0x…, for the table. */
static void mu_first_line(const char *s, char *out, size_t cap) {
    size_t o = 0;
    for (const char *c = s; *c && *c != '\n' && o + 4 < cap; c++) {
        if (c[0] == '0' && c[1] == 'x') {
            memcpy(out + o, "0x…", 5);
            o += 5;
            c += 2;
            while (isxdigit((unsigned char)c[0])) c++;
            c--;
            continue;
        }
        out[o++] = *c;
    }
    out[o] = 0;
}

static void mu_table_row(const char *name, int status, const char *err) {
    char line[300], out[600];
    mu_first_line(err, line, sizeof line);
    int nlines = 0;
    for (const char *c = err; *c; c++) nlines += *c == '\n';
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(out, sizeof out, "%s%s%s", sig == SIGABRT ? "abort" : sig == SIGSEGV ? "crash (SIGSEGV)"
                                                                    : sig == SIGBUS    ? "crash (SIGBUS)"
                                                                    : sig == SIGALRM   ? "hang (killed)"
                                                                                       : strsignal(sig),
                 line[0] ? ": " : "", line);
    } else if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (code == MU_EXIT_NA)
            snprintf(out, sizeof out, "n/a (%s)", mu_sh->note);
        else if (code == MU_EXIT_HEAP)
            snprintf(out, sizeof out, "%s; then the heap is broken: %s", line[0] ? line : "silent", mu_sh->heap);
        else if (code == MU_EXIT_OK)
            snprintf(out, sizeof out, "%s", line[0] ? line : "silent (heap still works)");
        else
            snprintf(out, sizeof out, "exit %d%s%s", code, line[0] ? ": " : "", line);
        (void)nlines;
    } else {
        snprintf(out, sizeof out, "status %#x", status);
    }
    if (mu_sh->result[0]) {
        char res[300];
        mu_first_line(mu_sh->result, res, sizeof res);
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, " [%s]", res);
    }
    if (!mu_sh->arranged && mu_sh->note[0] && !(WIFEXITED(status) && WEXITSTATUS(status) == MU_EXIT_NA)) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, " [layout not reached: %s]", mu_sh->note);
    }
    printf("ROW %s|%s\n", name, out);
    fflush(stdout);
}

static inline void mu_init_once(void) {
    if (mu_sh) return;
    mu_sh = (struct mu_shared *)mmap(NULL, sizeof *mu_sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mu_sh == MAP_FAILED) {
        printf("FAIL misuse: mmap of the shared page failed\n");
        exit(1);
    }
    const char *t = getenv("MISUSE_TABLE");
    const char *e = getenv("GOMALLOC_ON_ERROR");
    mu_mode = t && *t && strcmp(t, "0") ? 2 : e && !strcmp(e, "warn") ? 1 : 0;
}

static void mu_run(const char *name, void (*fn)(void)) {
    mu_init_once();
    memset(mu_sh, 0, sizeof *mu_sh);
    mu_sh->arranged = 1;
    char err[4096];
    int status = tl_run_child(mu_child, (void *)fn, err, sizeof err, 60);
    if (mu_mode == 2) {
        mu_table_row(name, status, err);
        return;
    }
    CHECKF(tl_gomalloc_active(), "gomalloc is not loaded (run with LD_PRELOAD=build/libgomalloc.so)");
    if (WIFEXITED(status) && WEXITSTATUS(status) == MU_EXIT_NOT_ARRANGED)
        CHECKF(0, "could not set the situation up: %s", mu_sh->note);
    if (WIFEXITED(status) && WEXITSTATUS(status) == MU_EXIT_NA) CHECKF(0, "not applicable: %s", mu_sh->note);
    CHECKF(mu_sh->expect[0], "the kind set no expectation; status %#x, stderr: %s", status, err);
    char want[600];
    if (mu_mode == 0) {
        snprintf(want, sizeof want, "%s\n", mu_sh->expect);
        CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "want SIGABRT, got status %#x%s%s; stderr: %s",
               status, mu_sh->heap[0] ? "; heap check: " : "", mu_sh->heap, err);
    } else {
        snprintf(want, sizeof want, "%s (ignored)\n", mu_sh->expect);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "want exit 0 after the warning, got status %#x%s%s; "
               "stderr: %s", status, mu_sh->heap[0] ? "; heap check: " : "", mu_sh->heap, err);
    }
    CHECKF(!mu_sh->result[0], "the ignored call returned the wrong thing: %s", mu_sh->result);
    CHECKF(strcmp(err, want) == 0, "stderr is not the one expected line\n  want: %s  got:  %s", want,
           err[0] ? err : "(nothing)\n");
}

#define MISUSE(name)                                                            \
    static void mu_kind_##name(void);                                           \
    TEST(name) { mu_run(#name, mu_kind_##name); }                               \
    static void mu_kind_##name(void)

#endif /* GOMALLOC_MISUSE_H */

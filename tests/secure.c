/*
 * secure.c: GOMALLOC_SECURE=1, the hardened mode (src/secure.c), under
 * LD_PRELOAD. Each property is asserted, and where it could hold by chance
 * or by default, the same check without the option is asserted to differ
 * (a test that cannot fail is a defect):
 *   - a write into a freed object is reported when the object is chosen for
 *     reuse: one exact line and SIGABRT, or " (ignored)" and a working heap
 *     with GOMALLOC_ON_ERROR=warn; without the option it goes unnoticed;
 *   - allocation order within a span is random (normal mode: ascending);
 *   - the heap base differs between runs (normal mode: Go's 0xc000000000);
 *   - metadata chunks lie between inaccessible guard pages (/proc/self/maps);
 *   - double frees are still caught with the reuse stacks off.
 * Run by tests/suites/20-api.sh; the child runs re-execute this program
 * with an argument (a fresh process is a fresh heap base).
 */
#include "testlib.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int secure_on(void) {
    const char *s = getenv("GOMALLOC_SECURE");
    return s && !strcmp(s, "1");
}

static void *launder(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* Run this program with argv[1] = what, env GOMALLOC_SECURE=secure (and
 * extra, if any); capture stdout+stderr. Returns the wait status. */
static int run_self(const char *what, int secure, const char *extra, char *out, size_t cap) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        setenv("GOMALLOC_SECURE", secure ? "1" : "0", 1);
        if (extra) putenv((char *)extra);
        execl("/proc/self/exe", "secure", what, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t n;
    while (len < cap - 1 && (n = read(fd[0], out + len, cap - 1 - len)) > 0) len += (size_t)n;
    out[len] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

/* ---- child programs (argv[1]) -------------------------------------------- */

/* Free a 64-byte object, write into it, allocate until it comes back. */
static int child_write_after_free(void) {
    unsigned char *p = malloc(64);
    printf("victim %p\n", (void *)p);
    fflush(stdout);
    volatile unsigned char *alias = launder(p);
    free(p);
    alias[24] = 0x41; /* byte 24: a word the poison covers */
    int back = 0;
    static void *keep[20000];
    for (int i = 0; i < 20000 && !back; i++) {
        keep[i] = malloc(64);
        back = keep[i] == (void *)p;
    }
    printf("came back %d\n", back);
    /* with warn: the heap goes on working */
    for (int i = 0; i < 20000; i++) free(keep[i]);
    for (int i = 0; i < 1000; i++) {
        char *q = malloc(100);
        memset(q, i, 100);
        free(q);
    }
    printf("heap ok\n");
    return 0;
}

/* 200 objects of 48 bytes: are the addresses ascending? */
static int child_order(void) {
    static uintptr_t a[200];
    for (int i = 0; i < 200; i++) a[i] = (uintptr_t)malloc(48);
    int ascending = 1;
    for (int i = 1; i < 200; i++) ascending &= a[i] > a[i - 1];
    printf("ascending %d\n", ascending);
    return 0;
}

static int child_base(void) {
    printf("base %p\n", malloc(64));
    return 0;
}

/* Double free of a small object with the reuse stacks off. */
static int child_double_free(void) {
    void *p = malloc(64), *q = launder(p);
    free(p);
    free(q);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

TEST(write_after_free_reported) {
    char out[4096];
    int st = run_self("write-after-free", 1, NULL, out, sizeof out);
    void *victim = NULL;
    char *v = strstr(out, "victim ");
    CHECKF(v && sscanf(v, "victim %p", &victim) == 1, "no victim line: %s", out);
    char want[256];
    snprintf(want, sizeof want,
             "gomalloc: malloc(%p): write after free (byte 24 of the free 64-byte object was modified)\n", victim);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "want SIGABRT, status %#x: %s", st, out);
    CHECKF(strstr(out, want) != NULL, "want the line\n  %s got:\n%s", want, out);
}

TEST(write_after_free_warn_goes_on) {
    char out[4096];
    int st = run_self("write-after-free", 1, "GOMALLOC_ON_ERROR=warn", out, sizeof out);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x: %s", st, out);
    CHECKF(strstr(out, "was modified) (ignored)\n") && strstr(out, "came back 1") && strstr(out, "heap ok"),
           "want the warning, the object back and a working heap: %s", out);
}

/* Control: the same program without the option is not stopped. */
TEST(write_after_free_unnoticed_without_secure) {
    char out[4096];
    int st = run_self("write-after-free", 0, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "write after free") && strstr(out, "heap ok"),
           "status %#x: %s", st, out);
}

TEST(random_allocation_order) {
    char out[1024];
    int st = run_self("order", 1, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "ascending 0"), "secure: %s", out);
    st = run_self("order", 0, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "ascending 1"), "normal mode: %s", out);
}

TEST(random_heap_base) {
    char out[1024];
    uintptr_t base[4];
    for (int i = 0; i < 4; i++) {
        int st = run_self("base", 1, NULL, out, sizeof out);
        void *p = NULL;
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0 && sscanf(out, "base %p", &p) == 1, "%s", out);
        base[i] = (uintptr_t)p >> 26; /* the arena */
    }
    int distinct = 0;
    for (int i = 0; i < 4; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= base[j] == base[i];
        distinct += !seen;
    }
    CHECKF(distinct >= 3, "4 runs gave %d distinct arenas", distinct);
    void *p = NULL;
    int st = run_self("base", 0, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && sscanf(out, "base %p", &p) == 1 && (uintptr_t)p >> 26 == 0xc000000000ull >> 26,
           "normal mode's first arena is Go's 0xc000000000: %s", out);
}

TEST(double_free_still_caught) {
    char out[1024];
    int st = run_self("double-free", 1, NULL, out, sizeof out);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strstr(out, "double free (object already freed)"),
           "status %#x: %s", st, out);
}

/* Metadata: the mapping holding a span record (reached through
 * malloc_usable_size's neighbours is not possible from outside, so: every
 * read-write mapping gomalloc made for metadata) is fenced by PROT_NONE
 * pages. Checked on /proc/self/maps: in secure mode some rw mapping of
 * 256 KiB (a persistentalloc chunk) has ---p neighbours on both sides. */
static int guarded_chunks(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    char line[512];
    uintptr_t prev_lo = 0, prev_hi = 0, lo, hi;
    char prev_perm[8] = "", perm[8];
    uintptr_t cand_lo = 0, cand_hi = 0;
    int guarded = 0, cand = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3) continue;
        if (cand && lo == cand_hi && !strcmp(perm, "---p")) guarded++;
        cand = 0;
        if (!strcmp(perm, "rw-p") && hi - lo == 256 << 10 && prev_hi == lo && !strcmp(prev_perm, "---p") &&
            prev_hi - prev_lo <= 65536) {
            cand = 1;
            cand_lo = lo;
            cand_hi = hi;
        }
        prev_lo = lo;
        prev_hi = hi;
        strcpy(prev_perm, perm);
    }
    (void)cand_lo;
    fclose(f);
    return guarded;
}

static int child_guards(void) {
    for (int i = 0; i < 100; i++) (void)launder(malloc(64 << i % 10));
    printf("guarded %d\n", guarded_chunks());
    return 0;
}

TEST(metadata_guard_pages) {
    char out[1024];
    int n = -1;
    int st = run_self("guards", 1, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && sscanf(strstr(out, "guarded ") ? strstr(out, "guarded ") : "", "guarded %d", &n) == 1 &&
               n >= 1,
           "secure: %s", out);
    st = run_self("guards", 0, NULL, out, sizeof out);
    CHECKF(WIFEXITED(st) && sscanf(strstr(out, "guarded ") ? strstr(out, "guarded ") : "", "guarded %d", &n) == 1 &&
               n == 0,
           "normal mode has no guarded chunks: %s", out);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "write-after-free")) return child_write_after_free();
    if (argc > 1 && !strcmp(argv[1], "order")) return child_order();
    if (argc > 1 && !strcmp(argv[1], "base")) return child_base();
    if (argc > 1 && !strcmp(argv[1], "double-free")) return child_double_free();
    if (argc > 1 && !strcmp(argv[1], "guards")) return child_guards();
    (void)secure_on;
    return tl_main(argc, argv);
}

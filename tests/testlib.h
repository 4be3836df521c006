/*
 * testlib.h: the test harness shared by every test program.
 *
 * A test program is a plain C (or C++) file that includes this header,
 * defines tests with TEST(name) { ... } and ends with TEST_MAIN().
 * Each test prints one line, "PASS name" or "FAIL name: file:line: why";
 * tests/run.sh collects those lines from every program and prints the final
 * "N passed, N failed". A program that crashes or times out is one failure.
 *
 *   TEST(calloc_zeroes) {
 *       char *p = calloc(100, 1);
 *       CHECK(p != NULL);
 *       for (int i = 0; i < 100; i++) CHECKF(p[i] == 0, "byte %d = %d", i, p[i]);
 *       free(p);
 *   }
 *   TEST_MAIN()
 *
 * CHECK/CHECKF end the current test on failure (they return from it).
 * Helpers: tl_gomalloc_active(), tl_rss_kib(), tl_run_child() (runs a
 * function in a child with stderr captured, for abort/misuse tests),
 * tl_rand() (deterministic xorshift).
 *
 * The harness allocates nothing itself, so it can test the allocator.
 */
#ifndef GOMALLOC_TESTLIB_H
#define GOMALLOC_TESTLIB_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
#define TL_EXTERN_C extern "C"
#else
#define TL_EXTERN_C
#endif

typedef void (*tl_fn)(void);

struct tl_test {
    const char *name;
    tl_fn fn;
};

#define TL_MAX_TESTS 512
static struct tl_test tl_tests[TL_MAX_TESTS];
static int tl_ntests;
static int tl_failed_current;
static const char *tl_current;

static inline void tl_register(const char *name, tl_fn fn) {
    if (tl_ntests < TL_MAX_TESTS) {
        tl_tests[tl_ntests].name = name;
        tl_tests[tl_ntests].fn = fn;
        tl_ntests++;
    }
}

#define TEST(name)                                                              \
    static void tl_test_##name(void);                                           \
    __attribute__((constructor)) static void tl_register_##name(void) {         \
        tl_register(#name, tl_test_##name);                                     \
    }                                                                           \
    static void tl_test_##name(void)

/* Report a failure of the current test and return from it. */
#define CHECKF(cond, ...)                                                       \
    do {                                                                        \
        if (!(cond)) {                                                          \
            tl_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
            return;                                                             \
        }                                                                       \
    } while (0)
#define CHECK(cond) CHECKF(cond, "%s", "")

/* Same, for use inside helpers that return int (0 = failed). */
#define CHECKR(cond, ...)                                                       \
    do {                                                                        \
        if (!(cond)) {                                                          \
            tl_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
            return 0;                                                           \
        }                                                                       \
    } while (0)

__attribute__((format(printf, 4, 5))) static inline void
tl_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!tl_failed_current) {
        printf("FAIL %s: %s:%d: %s%s%s\n", tl_current ? tl_current : "?", file, line, cond,
               msg[0] ? ": " : "", msg);
        fflush(stdout);
    }
    tl_failed_current = 1;
}

/* Log a line that is not a result (ignored by the runner). */
#define TLOG(...)                                                               \
    do {                                                                        \
        printf("# " __VA_ARGS__);                                               \
        printf("\n");                                                           \
        fflush(stdout);                                                         \
    } while (0)

/* Is gomalloc the process allocator (linked or preloaded)? */
static inline int tl_gomalloc_active(void) {
    return dlsym(RTLD_DEFAULT, "gm_malloc") != NULL;
}

/* Resident set size of this process in KiB (from /proc/self/statm). */
static inline long tl_rss_kib(void) {
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    long size = 0, resident = 0;
    if (sscanf(buf, "%ld %ld", &size, &resident) != 2) return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static inline double tl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Deterministic per-caller random numbers (xorshift64*). */
static inline uint64_t tl_rand(uint64_t *state) {
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Run fn(arg) in a child process with stderr captured into errbuf (NUL
 * terminated, truncated to errcap). Returns the wait status. */
static inline int tl_run_child(void (*fn)(void *), void *arg, char *errbuf, size_t errcap,
                               int timeout_s) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(pipefd[0]);
        dup2(pipefd[1], 2);
        close(pipefd[1]);
        alarm(timeout_s > 0 ? timeout_s : 30);
        fn(arg);
        _exit(0);
    }
    close(pipefd[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(pipefd[0], errbuf + len, errcap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
        if (len >= errcap - 1) {
            char sink[256];
            while (read(pipefd[0], sink, sizeof sink) > 0) {
            }
            break;
        }
    }
    errbuf[len] = 0;
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static inline int tl_main(int argc, char **argv) {
    int passed = 0, failed = 0;
    const char *prog = argc > 0 ? argv[0] : "test";
    for (int i = 0; i < tl_ntests; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                if (strcmp(argv[a], tl_tests[i].name) == 0) wanted = 1;
            if (!wanted) continue;
        }
        tl_current = tl_tests[i].name;
        tl_failed_current = 0;
        double t0 = tl_now();
        tl_tests[i].fn();
        double dt = tl_now() - t0;
        if (tl_failed_current) {
            failed++;
        } else {
            passed++;
            printf("PASS %s (%.2fs)\n", tl_tests[i].name, dt);
        }
        fflush(stdout);
    }
    printf("# %s: %d passed, %d failed\n", prog, passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

#define TEST_MAIN()                                                             \
    int main(int argc, char **argv) { return tl_main(argc, argv); }

#endif /* GOMALLOC_TESTLIB_H */

/*
 * Out of memory (issue "Out of memory", part 3), run under LD_PRELOAD by
 * tests/suites/36-oom.sh. Every refusal of the OS must come back as NULL
 * with errno ENOMEM, never as a crash or an abort, with the allocator
 * consistent and usable again once memory is freed.
 *
 *   fault_sweep_KIND   GOMALLOC_FAULT: a fixed workload (small, large,
 *                      calloc, realloc, aligned, frees, four threads with
 *                      cross-thread frees, malloc_trim, heap growth past one
 *                      arena) is run once to count the OS calls of KIND, then
 *                      again in a fresh process for every N from 1 to that
 *                      count with the N-th call refused. Each run checks every
 *                      NULL (errno ENOMEM, a failed realloc keeps its block),
 *                      the contents of every object, then frees everything and
 *                      allocates again (the fault is one-shot: all must
 *                      succeed), and the statistics identities. The parent
 *                      checks the exit status and that exactly one call was
 *                      refused.  KIND: alloc, reserve, map, used (with
 *                      GOMALLOC_HARDDECOMMIT=1, where sys_used is a real
 *                      mprotect), unused, reserve_linear (GOMALLOC_ARENA=linear).
 *   fault_persistent   any:N+ (the N-th and every later OS call refused) for
 *                      every N: NULLs with ENOMEM, no crash, consistent
 *                      statistics, objects intact.
 *   rlimit_as          a child limits its address space to what it uses +
 *                      256 MiB and allocates until NULL, for small, large,
 *                      calloc, realloc and aligned objects and in a second
 *                      thread; after freeing everything it gets (almost) as
 *                      much again.
 *   rlimit_data        the same under RLIMIT_DATA, which makes mprotect and
 *                      mmap of writable memory fail the way strict overcommit
 *                      (vm.overcommit_memory=2) does; run twice by the suite,
 *                      once with GOMALLOC_HARDDECOMMIT=1 (sys_used refused
 *                      for real after malloc_trim).
 *   memlimit_hard      the same exhaustion under GOMALLOC_MEMLIMIT_HARD
 *                      (realloc, aligned and posix_memalign paths; the
 *                      malloc/calloc paths are in mem_return.c).
 *   init_tiny_rlimit   fresh processes whose first allocation runs under
 *                      RLIMIT_AS of what they use + 0..160 MiB: start-up gets
 *                      NULL/ENOMEM or works, never aborts, and works once the
 *                      limit is lifted.
 *   on_oom_abort       GOMALLOC_ON_OOM=abort: the exact report line and
 *                      SIGABRT, for small, large, calloc overflow and a real
 *                      RLIMIT_AS exhaustion; without it, silence and NULL.
 *   fault_option_syntax  bad GOMALLOC_FAULT values are reported, ignored.
 *   overcommit_strict  exhaustion under vm.overcommit_memory=2, only when the
 *                      suite sets it (GM_TEST_OVERCOMMIT=1; machine-wide).
 *
 * Children run this program again (/proc/self/exe) with a mode argument
 * ("workload", "init-child", "abort-child") and report on stderr with
 * write(2); the parent parses gomalloc's GOMALLOC_FAULT exit line.
 */
#include "testlib.h"

#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/resource.h>

#include "gomalloc.h"

#define KiB 1024ul
#define MiB (1024ul * 1024)

extern char **environ;

/* ---- Output without the allocator -------------------------------------- */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 1) n = sizeof buf - 1;
    if (n > 0 && write(2, buf, (size_t)n) < 0) _exit(99);
}

static int child_failed;
#define CFAIL(...)                                                                                            \
    do {                                                                                                      \
        say("oom-child: FAIL line %d: ", __LINE__);                                                           \
        say(__VA_ARGS__);                                                                                     \
        say("\n");                                                                                            \
        child_failed = 1;                                                                                     \
    } while (0)

/* ---- Object contents ----------------------------------------------------- */

static inline unsigned char pat(uint32_t id, size_t off) { return (unsigned char)(id * 157u + off * 7u + (off >> 9)); }
static inline uint64_t wpat(uint32_t id, size_t off) { return ((uint64_t)id << 32 | off) * 0x9E3779B97F4A7C15ull; }

/* The first KiB of an object entirely (8-byte words, then bytes), a byte
 * every 64 KiB up to 1 MiB, and the last 64 bytes: every object's head and
 * tail are checked without touching every page (page faults, with huge
 * pages, are most of the cost of a run, and the sweep makes hundreds). */
#define WHOLE (1 * KiB)

static void fill(unsigned char *p, size_t n, uint32_t id) {
    size_t whole = n <= WHOLE ? n : WHOLE;
    size_t i = 0;
    for (; i + 8 <= whole; i += 8) {
        uint64_t w = wpat(id, i);
        memcpy(p + i, &w, 8);
    }
    for (; i < whole; i++) p[i] = pat(id, i);
    if (n <= WHOLE) return;
    for (i = WHOLE; i < n && n <= 1 * MiB; i += 64 * KiB) p[i] = pat(id, i);
    for (i = n - 64; i < n; i++) p[i] = pat(id, i);
}

static int check(const unsigned char *p, size_t n, uint32_t id) {
    size_t whole = n <= WHOLE ? n : WHOLE;
    size_t i = 0;
    for (; i + 8 <= whole; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != wpat(id, i)) return 0;
    }
    for (; i < whole; i++)
        if (p[i] != pat(id, i)) return 0;
    if (n <= WHOLE) return 1;
    for (i = WHOLE; i < n && n <= 1 * MiB; i += 64 * KiB)
        if (p[i] != pat(id, i)) return 0;
    for (i = n - 64; i < n; i++)
        if (p[i] != pat(id, i)) return 0;
    return 1;
}

/* The first bytes of an object that realloc must have kept. */
static int check_prefix(const unsigned char *p, size_t n, uint32_t id) {
    return check(p, n <= WHOLE ? n : WHOLE, id);
}

/* calloc: the first 4 KiB, then every 4 KiB up to 64 KiB, then every 64 KiB
 * up to 1 MiB, and the last byte. */
static int all_zero(const unsigned char *p, size_t n) {
    size_t i = 0, whole = n <= 4 * KiB ? n : 4 * KiB;
    for (; i + 8 <= whole; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w) return 0;
    }
    for (; i < n && (i < 1 * MiB || n <= 1 * MiB); i += i < whole ? 1 : i < 64 * KiB ? 4 * KiB : 64 * KiB)
        if (p[i]) return 0;
    return p[n - 1] == 0;
}

/* ---- The held objects ------------------------------------------------------ */

struct obj {
    unsigned char *p;
    size_t size;
    uint32_t id;
};

#define MAXOBJ 16384
static struct obj objs[MAXOBJ];
static int nobj;
static uint32_t next_id = 1;
static long nulls;      /* allocations that returned NULL (ENOMEM checked) */
static int persistent;  /* every OS call may be refused from now on */

static void keep(void *p, size_t size) {
    if (nobj == MAXOBJ) {
        CFAIL("object table full");
        return;
    }
    uint32_t id = next_id++;
    fill(p, size, id);
    objs[nobj++] = (struct obj){p, size, id};
}

static void refused(const char *what, size_t size, int err) {
    nulls++;
    if (err != ENOMEM) CFAIL("%s(%zu): NULL with errno %d, not ENOMEM", what, size, err);
}

enum op { OP_MALLOC, OP_CALLOC, OP_ALIGNED, OP_POSIX_MEMALIGN, OP_MEMALIGN };

/* One allocation of the given kind; NULL results are checked and counted. */
static void *alloc_one(enum op op, size_t size, size_t align) {
    void *p = NULL;
    errno = 0;
    switch (op) {
    case OP_MALLOC:
        p = malloc(size);
        break;
    case OP_CALLOC:
        p = calloc(1, size);
        if (p && !all_zero(p, size)) CFAIL("calloc(%zu) not zeroed", size);
        break;
    case OP_ALIGNED:
        p = aligned_alloc(align, size);
        break;
    case OP_POSIX_MEMALIGN: {
        int saved = errno = 12345;
        int rc = posix_memalign(&p, align, size);
        if (rc != 0) {
            p = NULL;
            if (errno != saved) CFAIL("posix_memalign changed errno to %d", errno);
            errno = rc;
        }
        break;
    }
    case OP_MEMALIGN:
        p = memalign(align, size);
        break;
    }
    if (!p) {
        refused(op == OP_CALLOC ? "calloc" : op == OP_MALLOC ? "malloc" : "aligned", size, errno);
        return NULL;
    }
    if (align && ((uintptr_t)p & (align - 1))) CFAIL("%p not aligned to %zu", p, align);
    return p;
}

static void alloc_keep(enum op op, size_t size, size_t align) {
    void *p = alloc_one(op, size, align);
    if (p) keep(p, size);
}

/* Resize object i; a failed realloc must leave the old block intact. */
static void realloc_obj(int i, size_t size) {
    struct obj *o = &objs[i];
    if (!o->p) return;
    errno = 0;
    unsigned char *q = realloc(o->p, size);
    if (!q) {
        refused("realloc", size, errno);
        if (!check(o->p, o->size, o->id)) CFAIL("failed realloc(%zu) damaged its block", size);
        return;
    }
    if (!check_prefix(q, o->size < size ? o->size : size, o->id))
        CFAIL("realloc %zu -> %zu lost the contents", o->size, size);
    o->p = q;
    o->size = size;
    o->id = next_id++;
    fill(q, size, o->id);
}

static void free_obj(int i) {
    if (!objs[i].p) return;
    if (!check(objs[i].p, objs[i].size, objs[i].id)) CFAIL("object %d (%zu bytes) damaged", i, objs[i].size);
    free(objs[i].p);
    objs[i].p = NULL;
}

static void verify_all(const char *when) {
    for (int i = 0; i < nobj; i++)
        if (objs[i].p && !check(objs[i].p, objs[i].size, objs[i].id)) {
            CFAIL("%s: object %d (%zu bytes at %p) damaged", when, i, objs[i].size, (void *)objs[i].p);
            return;
        }
}

static void free_all(void) {
    for (int i = 0; i < nobj; i++) free_obj(i);
    nobj = 0;
}

static const size_t small_sizes[] = {8, 16, 24, 40, 64, 100, 128, 200, 256, 400, 512, 700, 1024, 1500, 2048,
                                     3000, 4096, 6000, 8192, 10000, 13000, 16384, 20000, 27000, 32768};
#define NSMALL (sizeof small_sizes / sizeof small_sizes[0])

/* A deterministic mix of small allocations of every kind. */
static void small_mix(int count, int salt) {
    for (int i = 0; i < count; i++) {
        size_t size = small_sizes[(unsigned)(i * 7 + salt) % NSMALL];
        if (i % 3 == 0) size = small_sizes[(unsigned)(i + salt) % 8]; /* more tiny ones */
        if (i % 7 == 3)
            alloc_keep(OP_CALLOC, size, 0);
        else if (i % 11 == 5)
            alloc_keep(OP_ALIGNED, size, (size_t)64 << (i % 7));
        else if (i % 13 == 6)
            alloc_keep(OP_POSIX_MEMALIGN, size, (size_t)16 << (i % 9));
        else
            alloc_keep(OP_MALLOC, size, 0);
    }
}

/* ---- Statistics identities ------------------------------------------------ */

static void check_identities(const char *when) {
    void (*rd)(struct gm_memstats *) = (void (*)(struct gm_memstats *))dlsym(RTLD_DEFAULT, "gm_read_memstats");
    if (!rd) {
        CFAIL("gomalloc is not loaded");
        return;
    }
    static struct gm_memstats st;
    rd(&st);
    if (st.heap_sys != st.heap_inuse + st.heap_idle)
        CFAIL("%s: HeapSys %llu != HeapInuse %llu + HeapIdle %llu", when, (unsigned long long)st.heap_sys,
              (unsigned long long)st.heap_inuse, (unsigned long long)st.heap_idle);
    if (st.sys != st.heap_sys + st.mspan_sys + st.mcache_sys + st.other_sys) CFAIL("%s: Sys breakdown", when);
    if (st.sys != st.os_ready + st.os_prepared)
        CFAIL("%s: Sys %llu != Ready %llu + Prepared %llu", when, (unsigned long long)st.sys,
              (unsigned long long)st.os_ready, (unsigned long long)st.os_prepared);
    if (st.heap_released != st.os_prepared)
        CFAIL("%s: HeapReleased %llu != Prepared %llu", when, (unsigned long long)st.heap_released,
              (unsigned long long)st.os_prepared);
    if (st.heap_objects != st.mallocs - st.frees) CFAIL("%s: HeapObjects", when);
    if (st.heap_alloc > st.heap_inuse) CFAIL("%s: HeapAlloc > HeapInuse", when);
}

/* ---- The fault-injection workload ------------------------------------------- */

/* Worker threads run one at a time, in creation order, but stay alive
 * until all have run, so that their caches exist at the same time (each
 * new cache needs new metadata) and the OS calls come in a fixed order. */
struct thread_arg {
    int count, salt;
    int first;   /* objects [first, ...) are this thread's */
    pthread_t t;
    int started; /* pthread_create succeeded */
};

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static int turn;      /* salt of the thread whose turn it is; 0: main's */
static int may_exit;

static void wait_turn(int who) {
    pthread_mutex_lock(&turn_lock);
    while (turn != who) pthread_cond_wait(&turn_cond, &turn_lock);
    pthread_mutex_unlock(&turn_lock);
}

static void give_turn(int who) {
    pthread_mutex_lock(&turn_lock);
    turn = who;
    pthread_cond_broadcast(&turn_cond);
    pthread_mutex_unlock(&turn_lock);
}

static void *worker(void *arg) {
    struct thread_arg *a = arg;
    wait_turn(a->salt);
    /* Cross-thread frees: a quarter of what main holds. */
    for (int i = a->salt % 4; i < a->first; i += 4) free_obj(i);
    a->first = nobj;
    small_mix(a->count, a->salt);
    alloc_keep(OP_MALLOC, 50 * KiB, 0);
    alloc_keep(OP_CALLOC, 300 * KiB, 0);
    alloc_keep(OP_ALIGNED, 100 * KiB, 64 * KiB);
    /* Half of its own back. */
    for (int i = a->first; i < nobj; i += 2) free_obj(i);
    give_turn(0);
    pthread_mutex_lock(&turn_lock);
    while (!may_exit) pthread_cond_wait(&turn_cond, &turn_lock);
    pthread_mutex_unlock(&turn_lock);
    return NULL;
}

#define NTHREADS 4

static void run_threads(void) {
    static struct thread_arg a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (struct thread_arg){100, i + 1, nobj, 0, 0};
        int rc = EAGAIN;
        /* glibc's pthread_create callocs the thread's TLS vector: a refusal
         * there is EAGAIN, and the next try must work. */
        for (int attempt = 0; attempt < 3 && rc; attempt++) {
            rc = pthread_create(&a[i].t, NULL, worker, &a[i]);
            if (rc) nulls++;
        }
        if (rc) {
            if (!persistent) CFAIL("pthread_create failed three times: %d", rc);
            continue;
        }
        a[i].started = 1;
        a[i].first = nobj;
        give_turn(i + 1);
        wait_turn(0);
    }
    pthread_mutex_lock(&turn_lock);
    may_exit = 1;
    pthread_cond_broadcast(&turn_cond);
    pthread_mutex_unlock(&turn_lock);
    for (int i = 0; i < NTHREADS; i++)
        if (a[i].started) pthread_join(a[i].t, NULL);
}

static void workload(void) {
    /* The first allocation of the process: start-up itself may be refused. */
    alloc_keep(OP_MALLOC, 100, 0);
    small_mix(500, 0);
    /* Large objects of every kind, then one past an arena (64 MiB). */
    alloc_keep(OP_MALLOC, 40 * KiB, 0);
    alloc_keep(OP_MALLOC, 100 * KiB, 0);
    alloc_keep(OP_CALLOC, 1200 * KiB, 0);
    alloc_keep(OP_MALLOC, 3 * MiB, 0);
    alloc_keep(OP_ALIGNED, 1 * MiB, 2 * MiB);
    alloc_keep(OP_MEMALIGN, 200 * KiB, 64 * KiB);
    alloc_keep(OP_POSIX_MEMALIGN, 300 * KiB, 128 * KiB);
    alloc_keep(OP_MALLOC, 70 * MiB, 0);
    /* Reallocs: small across classes, small to large, large grow and shrink. */
    int n0 = nobj;
    for (int i = 1; i < n0 && i < 400; i += 5) realloc_obj(i, objs[i].size * 3 + 1);
    for (int i = 2; i < n0 && i < 400; i += 50) realloc_obj(i, 64 * KiB + (size_t)i);
    for (int i = n0 - 8; i < n0; i++) {
        if (i < 0 || !objs[i].p) continue;
        realloc_obj(i, objs[i].size > 1 * MiB ? objs[i].size / 3 : objs[i].size * 2);
    }
    for (int i = 0; i < nobj; i += 3) free_obj(i);
    verify_all("after the first phase");
    run_threads();
    verify_all("after the threads");
    /* Release free pages (sys_unused), then reuse them (sys_used). */
    malloc_trim(0);
    small_mix(150, 5);
    alloc_keep(OP_MALLOC, 2 * MiB, 0);
    alloc_keep(OP_CALLOC, 1500 * KiB, 0);
    verify_all("after malloc_trim");
}

/* Everything freed: allocate a mix again, verify it, free it. Run twice;
 * the parent knows from the output whether the one-shot fault was spent
 * before a round began (GOMALLOC_VERBOSE=1 reports each refusal in order
 * with our markers), and then that round must have no NULL at all. */
static void recovery(int round) {
    free_all();
    say("oom-child: recovery %d start\n", round);
    long before = nulls;
    small_mix(100, 9);
    alloc_keep(OP_MALLOC, 1 * MiB, 0);
    alloc_keep(OP_CALLOC, 1100 * KiB, 0);
    alloc_keep(OP_ALIGNED, 256 * KiB, 256 * KiB);
    for (int i = 0; i < nobj && i < 50; i += 7) realloc_obj(i, objs[i].size + 5000);
    verify_all("recovery");
    free_all();
    check_identities("after recovery");
    say("oom-child: recovery %d nulls %ld\n", round, nulls - before);
}

static int workload_main(void) {
    /* Refusals reported before this line hit allocations made before main
     * (the C++ runtime's, when a sanitizer runtime loads libstdc++). */
    say("oom-child: main\n");
    persistent = getenv("OOM_PERSISTENT") != NULL;
    workload();
    check_identities("after the workload");
    long first = nulls;
    recovery(1);
    recovery(2);
    say("oom-child: nulls %ld recovery-nulls %ld %s\n", first, nulls - first, child_failed ? "FAIL" : "ok");
    return child_failed ? 1 : 0;
}

/* ---- Running children --------------------------------------------------- */

/* Start this program with `mode` (and arg) in a fresh process, with the
 * GOMALLOC_ variables of the environment replaced by `env` (NULL ended);
 * its stdout and stderr go to the pipe returned in *fd. */
static unsigned long exec_as_limit; /* if set: RLIMIT_AS of the child from exec on */

static pid_t start_self(const char *mode, const char *arg, const char *const *env, int timeout_s, int *fd) {
    static const char *envp[512];
    int k = 0;
    for (char **e = environ; *e && k < 480; e++)
        if (strncmp(*e, "GOMALLOC_", 9) && strncmp(*e, "OOM_", 4)) envp[k++] = *e;
    for (int i = 0; env && env[i] && k < 510; i++) envp[k++] = env[i];
    envp[k] = NULL;
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        alarm((unsigned)timeout_s);
        if (exec_as_limit) {
            struct rlimit rl = {exec_as_limit, RLIM_INFINITY};
            if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(126);
        }
        const char *argv[] = {"oom", mode, arg, NULL};
        execve("/proc/self/exe", (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    close(fds[1]);
    *fd = fds[0];
    return pid;
}

/* Read the child's output until it closes the pipe, then reap it. */
static int finish_self(pid_t pid, int fd, char *out, size_t cap) {
    size_t len = 0;
    for (;;) {
        char sink[256];
        ssize_t n = len < cap - 1 ? read(fd, out + len, cap - 1 - len) : read(fd, sink, sizeof sink);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (len < cap - 1) len += (size_t)n;
    }
    out[len] = 0;
    close(fd);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

static int run_self(const char *mode, const char *arg, const char *const *env, char *out, size_t cap,
                    int timeout_s) {
    int fd;
    pid_t pid = start_self(mode, arg, env, timeout_s, &fd);
    if (pid < 0) return -1;
    return finish_self(pid, fd, out, cap);
}

struct report {
    unsigned long long calls[6], injected;
    long nulls, recovery_nulls;
    int ok;
};

static int parse_report(const char *out, struct report *r) {
    memset(r, 0, sizeof *r);
    const char *f = strstr(out, "gomalloc: GOMALLOC_FAULT: calls");
    const char *c = strstr(out, "oom-child: nulls");
    if (!f || !c) return 0;
    if (sscanf(f, "gomalloc: GOMALLOC_FAULT: calls alloc %llu reserve %llu map %llu used %llu unused %llu any %llu; "
                  "injected %llu",
               &r->calls[0], &r->calls[1], &r->calls[2], &r->calls[3], &r->calls[4], &r->calls[5],
               &r->injected) != 7)
        return 0;
    char word[8] = {0};
    if (sscanf(c, "oom-child: nulls %ld recovery-nulls %ld %7s", &r->nulls, &r->recovery_nulls, word) != 3) return 0;
    r->ok = !strcmp(word, "ok");
    return 1;
}

static const char *const kinds[] = {"alloc", "reserve", "map", "used", "unused", "any"};

static int kind_index(const char *k) {
    for (int i = 0; i < 6; i++)
        if (!strcmp(kinds[i], k)) return i;
    return -1;
}

static char out[64 * 1024];

/* How many workload runs may go at once (the machine is shared). */
static int jobs(void) {
    const char *j = getenv("OOM_JOBS");
    int n = j ? atoi(j) : 2;
    return n < 1 ? 1 : n > 8 ? 8 : n;
}

struct sweep_run {
    unsigned long long n;
    pid_t pid;
    int fd;
    int status;
    char out[16384];
};

/* Check one finished run; 0 = failed (reported). */
static int sweep_check(const char *kind, int repeat, struct sweep_run *r, long *with_null, long *max_nulls,
                       long *premain) {
    struct report rep;
    int parsed = parse_report(r->out, &rep);
    CHECKR(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0 && parsed && rep.ok,
           "%s:%llu%s: status %#x (%s %d), output:\n%s", kind, r->n, repeat ? "+" : "", r->status,
           WIFSIGNALED(r->status) ? "signal" : "exit",
           WIFSIGNALED(r->status) ? WTERMSIG(r->status) : WEXITSTATUS(r->status), r->out);
    if (repeat) {
        CHECKR(rep.injected >= 1, "%s:%llu+: nothing refused:\n%s", kind, r->n, r->out);
    } else {
        CHECKR(rep.injected == 1, "%s:%llu: %llu calls refused, want 1:\n%s", kind, r->n, rep.injected, r->out);
        /* A recovery round that began after the refusal must not fail. */
        const char *refusal = strstr(r->out, "GOMALLOC_FAULT: ");
        CHECKR(refusal && strstr(refusal, " refused\n"), "%s:%llu: no refusal reported:\n%s", kind, r->n, r->out);
        const char *main_line = strstr(r->out, "oom-child: main\n");
        CHECKR(main_line, "%s:%llu: no main line:\n%s", kind, r->n, r->out);
        if (refusal < main_line) ++*premain;
        for (int round = 1; round <= 2; round++) {
            char start[64], result[64];
            snprintf(start, sizeof start, "oom-child: recovery %d start\n", round);
            snprintf(result, sizeof result, "oom-child: recovery %d nulls ", round);
            const char *st = strstr(r->out, start), *res = strstr(r->out, result);
            CHECKR(st && res, "%s:%llu: recovery round %d missing:\n%s", kind, r->n, round, r->out);
            if (refusal < st)
                CHECKR(atol(res + strlen(result)) == 0,
                       "%s:%llu: allocations failed in recovery round %d, after the one refusal:\n%s", kind, r->n,
                       round, r->out);
        }
    }
    if (rep.nulls) ++*with_null;
    if (rep.nulls > *max_nulls) *max_nulls = rep.nulls;
    return 1;
}

/* The sweep over N = 1, 1 + step, ... up to the count of calls of `kind`;
 * extra: one more GOMALLOC_ setting; repeat: KIND:N+ (every call from the
 * N-th on refused). */
static void sweep(const char *kind, const char *extra, int repeat, unsigned step) {
    if (!tl_gomalloc_active()) {
        TLOG("gomalloc is not loaded");
        CHECK(!"gomalloc loaded");
    }
    int ki = kind_index(kind);
    char fault[64];
    /* One-shot runs report the refusal (GOMALLOC_VERBOSE); persistent runs
     * would report thousands. */
    const char *env[6] = {"GOMALLOC_SCAVENGE=off", fault, extra, NULL, NULL, NULL};
    env[extra ? 3 : 2] = repeat ? "OOM_PERSISTENT=1" : "GOMALLOC_VERBOSE=1";
    snprintf(fault, sizeof fault, "GOMALLOC_FAULT=%s:0", kind);
    int status = run_self("workload", NULL, env, out, sizeof out, 60);
    struct report r0;
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && parse_report(out, &r0) && r0.ok,
           "counting run: status %#x, output:\n%s", status, out);
    unsigned long long count = r0.calls[ki];
    CHECKF(r0.nulls == 0 && r0.injected == 0, "counting run refused something:\n%s", out);
    TLOG("%s%s%s: %llu calls (alloc %llu reserve %llu map %llu used %llu unused %llu)", kind, extra ? " " : "",
         extra ? extra : "", count, r0.calls[0], r0.calls[1], r0.calls[2], r0.calls[3], r0.calls[4]);
    CHECKF(count > 0, "the workload made no %s call", kind);
    static struct sweep_run slot[8];
    int nj = jobs(), busy = 0;
    long runs = 0, with_null = 0, max_nulls = 0, premain = 0;
    unsigned long long next = 1;
    int ok = 1;
    while (ok && (next <= count || busy)) {
        /* Start runs while there are free slots, then finish the oldest. */
        while (next <= count && busy < nj) {
            struct sweep_run *r = &slot[busy];
            r->n = next;
            snprintf(fault, sizeof fault, "GOMALLOC_FAULT=%s:%llu%s", kind, next, repeat ? "+" : "");
            r->pid = start_self("workload", NULL, env, 60, &r->fd);
            CHECKF(r->pid > 0, "cannot start a run");
            busy++;
            next += next < 16 ? 1 : step;
        }
        struct sweep_run *r = &slot[0];
        r->status = finish_self(r->pid, r->fd, r->out, sizeof r->out);
        runs++;
        ok = sweep_check(kind, repeat, r, &with_null, &max_nulls, &premain);
        memmove(&slot[0], &slot[1], sizeof slot[0] * (size_t)(busy - 1));
        busy--;
    }
    /* After a failure: let the runs in flight finish. */
    for (int i = 0; i < busy; i++) finish_self(slot[i].pid, slot[i].fd, slot[i].out, sizeof slot[i].out);
    if (!ok) return;
    TLOG("%s: %ld runs (%d at a time), %ld got NULL (ENOMEM), %ld absorbed by a retry; at most %ld NULLs in a run",
         kind, runs, nj, with_null, runs - with_null, max_nulls);
    if (premain)
        TLOG("%s: %ld refusals hit allocations made before main (not ours to see)", kind, premain);
    if (!strcmp(kind, "unused"))
        CHECKF(with_null == 0, "a refused release made %ld runs fail allocations", with_null);
    else
        CHECKF(with_null + premain > 0, "no %s refusal ever reached an allocation as NULL", kind);
}

TEST(fault_sweep_alloc) { sweep("alloc", NULL, 0, 1); }
TEST(fault_sweep_reserve) { sweep("reserve", NULL, 0, 1); }
TEST(fault_sweep_reserve_linear) { sweep("reserve", "GOMALLOC_ARENA=linear", 0, 1); }
TEST(fault_sweep_map) { sweep("map", NULL, 0, 1); }
TEST(fault_sweep_used) { sweep("used", "GOMALLOC_HARDDECOMMIT=1", 0, 1); }
/* A refused release never reaches the program: every N up to 16, then
 * every 4th, for consistency only. */
TEST(fault_sweep_unused) { sweep("unused", NULL, 0, 4); }
/* Persistent refusals: every N of the short kinds; for any, N = 1..16,
 * then every 8th. */
TEST(fault_persistent_alloc) { sweep("alloc", NULL, 1, 1); }
TEST(fault_persistent_map) { sweep("map", NULL, 1, 1); }
TEST(fault_persistent_any) { sweep("any", NULL, 1, 8); }

/* ---- Exhaustion under a limit ---------------------------------------------- */

static void *ptrs[1 << 20]; /* in .bss: mapped before any limit is set */

struct exhaust {
    enum op op;
    const char *name;
    size_t min, max; /* size range */
    size_t align;
};

static size_t pick(const struct exhaust *e, uint64_t *seed) {
    return e->min + tl_rand(seed) % (e->max - e->min + 1);
}

/* Allocate until NULL (at most cap objects); returns how many. */
static size_t until_null(const struct exhaust *e, size_t cap, uint64_t seed) {
    size_t n = 0;
    for (;;) {
        if (n == cap) return n;
        size_t size = pick(e, &seed);
        void *p = alloc_one(e->op, size, e->align);
        if (!p) return n;
        *(size_t *)p = n; /* every object carries its index */
        ((unsigned char *)p)[size - 1] = (unsigned char)n;
        ptrs[n++] = p;
    }
}

static int verify_and_free(size_t n, const struct exhaust *e, uint64_t seed) {
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        size_t size = pick(e, &seed);
        if (*(size_t *)ptrs[i] != i || ((unsigned char *)ptrs[i])[size - 1] != (unsigned char)i) ok = 0;
        free(ptrs[i]);
    }
    return ok;
}

/* A thread, started before the limit is reached (its stack needs memory
 * too), that allocates until NULL twice: while main holds everything, and
 * after main has freed it all. */
static sem_t go[2], done[2];
static long thread_got[2];

static void *thread_until_null(void *arg) {
    (void)arg;
    for (int round = 0; round < 2; round++) {
        sem_wait(&go[round]);
        long got = 0;
        void *head = NULL;
        for (;;) {
            errno = 0;
            void **q = malloc(256);
            if (!q) {
                if (errno != ENOMEM) CFAIL("thread: malloc NULL with errno %d", errno);
                break;
            }
            *q = head;
            head = q;
            got++;
        }
        while (head) {
            void *next = *(void **)head;
            free(head);
            head = next;
        }
        thread_got[round] = got;
        sem_post(&done[round]);
    }
    return NULL;
}

static const struct exhaust exhaust_kinds[] = {
    {OP_MALLOC, "small", 16, 4000, 0},       {OP_MALLOC, "large", 40 * KiB, 4 * MiB, 0},
    {OP_CALLOC, "calloc", 16, 300 * KiB, 0}, {OP_ALIGNED, "aligned", 64, 200 * KiB, 4096},
    {OP_MEMALIGN, "aligned-large", 100 * KiB, 2 * MiB, 1 * MiB},
};

/* Exhaust with every kind, free, exhaust again: the second round must get
 * at least 90% of the first. Then realloc growth to NULL, and a thread. */
static void exhaust_all(void) {
    for (int i = 0; i < 2; i++) sem_init(&go[i], 0, 0), sem_init(&done[i], 0, 0);
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_until_null, NULL);
    if (rc != 0) {
        CFAIL("pthread_create: %d", rc);
        return;
    }
    for (unsigned k = 0; k < sizeof exhaust_kinds / sizeof exhaust_kinds[0]; k++) {
        const struct exhaust *e = &exhaust_kinds[k];
        size_t n1 = until_null(e, sizeof ptrs / sizeof ptrs[0], k + 1);
        if (n1 == sizeof ptrs / sizeof ptrs[0]) CFAIL("%s: no limit reached", e->name);
        /* At the limit, the other kinds fail cleanly or work. */
        for (unsigned j = 0; j < sizeof exhaust_kinds / sizeof exhaust_kinds[0]; j++) {
            uint64_t s = j;
            void *p = alloc_one(exhaust_kinds[j].op, pick(&exhaust_kinds[j], &s), exhaust_kinds[j].align);
            free(p);
        }
        if (!verify_and_free(n1, e, k + 1)) CFAIL("%s: objects damaged at the limit", e->name);
        size_t n2 = until_null(e, n1, k + 1);
        if (n2 * 10 < n1 * 9) CFAIL("%s: %zu objects before the frees, only %zu after", e->name, n1, n2);
        if (!verify_and_free(n2, e, k + 1)) CFAIL("%s: objects damaged after the frees", e->name);
        say("oom-child: %s: %zu then %zu objects\n", e->name, n1, n2);
    }
    /* realloc growth until NULL: the old block stays intact. */
    size_t size = 1000;
    unsigned char *p = malloc(size);
    if (!p) CFAIL("malloc(1000) after the frees");
    fill(p, size, 42);
    for (;;) {
        size_t want = size + size / 2;
        errno = 0;
        unsigned char *q = realloc(p, want);
        if (!q) {
            if (errno != ENOMEM) CFAIL("realloc(%zu): errno %d", want, errno);
            if (!check(p, size, 42)) CFAIL("failed realloc damaged its block");
            break;
        }
        if (!check_prefix(q, size, 42)) CFAIL("realloc %zu -> %zu lost the contents", size, want);
        p = q;
        size = want;
        fill(p, size, 42);
    }
    say("oom-child: realloc grew to %zu bytes\n", size);
    free(p);
    /* Main holds everything; the thread gets NULL, then works after frees. */
    const struct exhaust *e = &exhaust_kinds[0];
    size_t n = until_null(e, sizeof ptrs / sizeof ptrs[0], 7);
    sem_post(&go[0]);
    sem_wait(&done[0]);
    if (!verify_and_free(n, e, 7)) CFAIL("objects damaged with a thread at the limit");
    sem_post(&go[1]);
    sem_wait(&done[1]);
    pthread_join(t, NULL);
    say("oom-child: thread: %ld objects at the limit, %ld after the frees (main had %zu)\n", thread_got[0],
        thread_got[1], n);
    if (thread_got[1] * 5 < (long)n) CFAIL("the thread got only %ld objects after the frees", thread_got[1]);
    check_identities("after exhaustion");
    void *last = malloc(12345);
    if (!last) CFAIL("malloc after everything was freed");
    free(last);
}

/* VmSize or VmData of this process, bytes. */
static unsigned long vm_bytes(const char *field) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *s = strstr(buf, field);
    return s ? strtoul(s + strlen(field), NULL, 10) * 1024 : 0;
}

static void limited_child(void *arg) {
    int resource = (int)(intptr_t)arg;
    unsigned long base = vm_bytes(resource == RLIMIT_AS ? "VmSize:" : "VmData:");
    struct rlimit rl = {base + 256 * MiB, RLIM_INFINITY};
    if (!base || setrlimit(resource, &rl) != 0) {
        say("oom-child: FAIL cannot set the limit\n");
        _exit(1);
    }
    exhaust_all();
    _exit(child_failed ? 1 : 0);
}

static void limited(int resource) {
    CHECK(tl_gomalloc_active());
    char err[8192];
    int status = tl_run_child(limited_child, (void *)(intptr_t)resource, err, sizeof err, 120);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x:\n%s", status, err);
    for (char *line = err, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        if (!strncmp(line, "oom-child: ", 11)) TLOG("%s", line + 11);
    }
}

TEST(rlimit_as) { limited(RLIMIT_AS); }
TEST(rlimit_data) { limited(RLIMIT_DATA); }

/* Only with vm.overcommit_memory=2 set by the suite (GM_TEST_OVERCOMMIT=1):
 * the commit limit of the whole machine refuses the mappings. */
TEST(overcommit_strict) {
    char mode[8] = {0};
    int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY);
    CHECK(fd >= 0 && read(fd, mode, sizeof mode - 1) > 0);
    close(fd);
    CHECKF(mode[0] == '2', "vm.overcommit_memory is %c, not 2", mode[0]);
    CHECK(tl_gomalloc_active());
    char err[8192];
    int status = tl_run_child((void (*)(void *))exhaust_all, NULL, err, sizeof err, 100);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strstr(err, "FAIL"), "status %#x:\n%s", status, err);
}

TEST(memlimit_hard) {
    /* GOMALLOC_MEMLIMIT=96MiB GOMALLOC_MEMLIMIT_HARD=1 (the suite) */
    CHECK(tl_gomalloc_active());
    uint64_t (*get)(void) = (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "gm_get_memory_limit");
    CHECK(get && get() == 96 * MiB);
    char err[8192];
    int status = tl_run_child((void (*)(void *))exhaust_all, NULL, err, sizeof err, 120);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strstr(err, "FAIL"), "status %#x:\n%s", status, err);
}

/* ---- Start-up under a tiny limit --------------------------------------------- */

/* "measure": print the address space in use at main (run with every
 * reservation refused, so that none of gomalloc's is counted). "run": the
 * parent set RLIMIT_AS before exec (anything allocating before main, such
 * as the C++ runtime a sanitizer loads, met the limit too); allocate, lift
 * the limit, allocate again. */
static int init_child_main(const char *arg) {
    if (!strcmp(arg, "measure")) {
        say("oom-child: vmsize %lu\n", vm_bytes("VmSize:"));
        return 0;
    }
    errno = 0;
    unsigned char *p = malloc(100);
    int err = errno;
    unsigned char *big = p ? malloc(3 * MiB) : NULL;
    int big_err = errno;
    if ((!p && err != ENOMEM) || (p && !big && big_err != ENOMEM)) {
        say("oom-child: FAIL NULL with errno %d/%d\n", err, big_err);
        return 1;
    }
    say("oom-child: limited %s%s\n", p ? "small ok" : "small NULL", big ? ", large ok" : p ? ", large NULL" : "");
    free(big);
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl) != 0) return 4;
    if (!p) p = malloc(100);
    big = malloc(3 * MiB);
    if (!p || !big) {
        say("oom-child: FAIL still NULL after the limit was lifted\n");
        return 1;
    }
    fill(p, 100, 1);
    fill(big, 3 * MiB, 2);
    unsigned char *huge = malloc(100 * MiB);
    if (!huge) return 1;
    fill(huge, 100 * MiB, 3);
    if (!check(p, 100, 1) || !check(big, 3 * MiB, 2) || !check(huge, 100 * MiB, 3)) return 1;
    free(p);
    free(big);
    free(huge);
    check_identities("start-up under a limit");
    return child_failed;
}

TEST(init_tiny_rlimit) {
    CHECK(tl_gomalloc_active());
    static const char *const measure_env[] = {"GOMALLOC_FAULT=reserve:1+", NULL};
    int status = run_self("init-child", "measure", measure_env, out, sizeof out, 30);
    unsigned long base = 0;
    const char *m = strstr(out, "oom-child: vmsize ");
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && m && sscanf(m, "oom-child: vmsize %lu", &base) == 1,
           "measuring: status %#x:\n%s", status, out);
    int failed_init = 0, worked = 0, large_null = 0;
    /* KiB of address space beyond what the process uses at main without
     * gomalloc (256 KiB of slack for the differences between two execs). */
    static const unsigned long extras[] = {256,   1024,  2048,  3072,  4096,  4608,  4800,  5120,
                                           6144,  8192,  16384, 32768, 65536, 66560, 67584, 69632,
                                           71680, 73728, 81920, 98304, 131072, 163840};
    for (unsigned i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        static const char *const env[] = {"GOMALLOC_VERBOSE=1", NULL};
        exec_as_limit = base + extras[i] * KiB;
        status = run_self("init-child", "run", env, out, sizeof out, 30);
        exec_as_limit = 0;
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "extra %lu KiB: status %#x:\n%s", extras[i], status,
               out);
        CHECKF(!strstr(out, "fatal"), "extra %lu KiB:\n%s", extras[i], out);
        if (strstr(out, "small NULL")) failed_init++;
        if (strstr(out, "small ok")) worked++;
        if (strstr(out, "large NULL")) large_null++;
    }
    TLOG("start-up: %d limits refused it, %d let it work (%d of those refused 3 MiB)", failed_init, worked,
         large_null);
    CHECK(failed_init > 0 && worked > 0);
}

/* ---- GOMALLOC_ON_OOM=abort -------------------------------------------------- */

static volatile size_t calloc_count = (size_t)1 << 62; /* not a constant: no warning */

static int abort_child_main(const char *what) {
    void *p = NULL;
    errno = 0;
    if (!strcmp(what, "small") || !strcmp(what, "large")) {
        /* Start up and grow first, then allow 16 MiB more address space:
         * the next arena (64 MiB) is refused. */
        size_t size = what[0] == 's' ? 24 : 100000;
        free(malloc(size));
        struct rlimit rl = {vm_bytes("VmSize:") + 16 * MiB, RLIM_INFINITY};
        if (setrlimit(RLIMIT_AS, &rl) != 0) return 4;
        while ((p = malloc(size)) != NULL) {
        }
    } else if (!strcmp(what, "once"))
        p = malloc(100000);
    else if (!strcmp(what, "calloc-overflow"))
        p = calloc(calloc_count, 16);
    else if (!strcmp(what, "rlimit")) {
        struct rlimit rl = {vm_bytes("VmSize:") + 128 * MiB, RLIM_INFINITY};
        if (setrlimit(RLIMIT_AS, &rl) != 0) return 4;
        for (;;) {
            p = malloc(1 * MiB);
            if (!p) break;
        }
    }
    if (p) return 5;
    say("oom-child: NULL errno %d\n", errno);
    return errno == ENOMEM ? 0 : 1;
}

static void expect_abort(const char *what, const char *fault, const char *line) {
    const char *env[] = {"GOMALLOC_ON_OOM=abort", fault, NULL};
    int status = run_self("abort-child", what, env, out, sizeof out, 30);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "%s: status %#x:\n%s", what, status, out);
    CHECKF(!strcmp(out, line), "%s: output\n%s\nwant\n%s", what, out, line);
}

TEST(on_oom_abort) {
    CHECK(tl_gomalloc_active());
    expect_abort("small", NULL, "gomalloc: out of memory allocating 24 bytes\n");
    expect_abort("large", NULL, "gomalloc: out of memory allocating 100000 bytes\n");
    expect_abort("calloc-overflow", NULL,
                 "gomalloc: out of memory allocating 4611686018427387904 x 16 bytes\n");
    /* A real exhaustion. */
    const char *env[] = {"GOMALLOC_ON_OOM=abort", NULL};
    int status = run_self("abort-child", "rlimit", env, out, sizeof out, 30);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "rlimit: status %#x:\n%s", status, out);
    CHECKF(!strcmp(out, "gomalloc: out of memory allocating 1048576 bytes\n"), "rlimit: output\n%s", out);
    /* Without the option: NULL, ENOMEM, not a word. */
    status = run_self("abort-child", "large", NULL, out, sizeof out, 30);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "default: status %#x:\n%s", status, out);
    CHECKF(strstr(out, "oom-child: NULL errno 12\n") && !strstr(out, "out of memory"), "default: output\n%s", out);
    const char *quiet2[] = {"GOMALLOC_ON_OOM=null", NULL};
    status = run_self("abort-child", "rlimit", quiet2, out, sizeof out, 30);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && !strstr(out, "out of memory"),
           "ON_OOM=null: status %#x:\n%s", status, out);
}

/* GOMALLOC_FAULT values: bad ones are reported and ignored. */
TEST(fault_option_syntax) {
    CHECK(tl_gomalloc_active());
    static const char *const bad[] = {"GOMALLOC_FAULT=map:x", "GOMALLOC_FAULT=bogus:1", "GOMALLOC_FAULT=map:",
                                      "GOMALLOC_FAULT=map:1++", "GOMALLOC_FAULT=map", "GOMALLOC_FAULT=map:-1",
                                      "GOMALLOC_FAULT=map:delay=", "GOMALLOC_FAULT=map:delay=5+",
                                      "GOMALLOC_FAULT=map:delay=2000000", "GOMALLOC_FAULT=map:delayx"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i], NULL};
        int status = run_self("abort-child", "once", env, out, sizeof out, 30);
        char want[96];
        snprintf(want, sizeof want, "gomalloc: %s: invalid value (ignored)\n", bad[i]);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 5, "%s: status %#x:\n%s", bad[i], status, out);
        CHECKF(strstr(out, want) != NULL, "%s: output\n%s", bad[i], out);
        CHECKF(!strstr(out, "GOMALLOC_FAULT: calls"), "%s: counted calls:\n%s", bad[i], out);
    }
    /* KIND:0 counts and reports at exit; KIND:N refuses. */
    const char *count[] = {"GOMALLOC_FAULT=reserve:0", NULL};
    int status = run_self("abort-child", "once", count, out, sizeof out, 30);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 5 && strstr(out, "GOMALLOC_FAULT: calls alloc ") &&
               strstr(out, "; injected 0\n"),
           "reserve:0: status %#x:\n%s", status, out);
    /* (whether the refused start-up was this program's or the C++ runtime's
     * before main, under a sanitizer: NULL with ENOMEM or a later retry) */
    const char *first[] = {"GOMALLOC_FAULT=reserve:1", NULL};
    status = run_self("abort-child", "calloc-overflow", first, out, sizeof out, 30);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0 && strstr(out, "; injected 1\n"),
           "reserve:1: status %#x:\n%s", status, out);
    /* KIND:delay=US: every call of KIND takes US microseconds longer, none
     * is refused. */
    const char *delay[] = {"GOMALLOC_FAULT=map:delay=50000", NULL};
    double t0 = tl_now();
    status = run_self("abort-child", "once", delay, out, sizeof out, 30);
    double dt = tl_now() - t0;
    unsigned long long maps = 0;
    const char *rep = strstr(out, "GOMALLOC_FAULT: calls alloc ");
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 5 && rep && strstr(out, "; injected 0\n") &&
               sscanf(rep, "GOMALLOC_FAULT: calls alloc %*u reserve %*u map %llu", &maps) == 1 && maps >= 1,
           "map:delay=50000: status %#x:\n%s", status, out);
    CHECKF(dt >= (double)maps * 0.05, "map:delay=50000: %llu map calls took %.3f s in all", maps, dt);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "workload")) return workload_main();
    if (argc > 2 && !strcmp(argv[1], "init-child")) return init_child_main(argv[2]);
    if (argc > 2 && !strcmp(argv[1], "abort-child")) return abort_child_main(argv[2]);
    return tl_main(argc, argv);
}

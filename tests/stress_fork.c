/*
 * stress_fork: fork() while other threads allocate and free.
 *
 * Four worker threads allocate, fill, swap into a shared pool (so most frees
 * are cross-thread) and free for the whole test. Meanwhile:
 *   fork_while_allocating: the main thread forks 200 times. Each child (under
 *     alarm(), and killed by the parent if it has not exited after 40 s, so a
 *     deadlock, even inside fork()'s atfork handlers, is a failure with a
 *     message rather than a suite timeout) verifies and frees a set of objects
 *     the workers allocated before the fork, allocates and frees 2,000 objects
 *     of mixed sizes with pattern checks, creates threads that allocate objects
 *     the child's main thread frees, and exits with _exit(0) or exit(0). Every
 *     10th child forks again (nested) and checks its grandchild. The parent
 *     checks every exit status.
 *   fork_from_worker_threads: four threads fork 30 times each, all
 *     concurrently, while the workers keep allocating.
 *   fork_while_pages_made_ready: one thread frees, releases and allocates
 *     again in a loop (its spans come from released pages) while the main
 *     thread forks 40 times; each child checks the heap, statistics
 *     identities included (the suite also runs it with that transition
 *     slowed down, GOMALLOC_FAULT=used:delay=200).
 * A child reports a failure through a pipe; the parent prints it.
 */
#include "testlib.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* With GM_EXPECT=1 (the suites' default) the allocator under test must really
 * be gomalloc; GM_EXPECT=0 runs the stress on a stand-in (glibc, mimalloc). */
TEST(allocator_is_gomalloc) {
    const char *e = getenv("GM_EXPECT");
    if (e && strcmp(e, "0") == 0) {
        TLOG("GM_EXPECT=0: running on a stand-in allocator");
        return;
    }
    const char *pre = getenv("LD_PRELOAD");
    CHECKF(tl_gomalloc_active(), "gomalloc is not loaded (LD_PRELOAD=%s); GM_EXPECT=0 runs under a stand-in",
           pre ? pre : "");
}

#define NWORK 4
#define POOL 512
#define STABLE_PER_WORKER 64
#define NFORK 200
#define CHILD_ALARM 30   /* the child's own alarm, set when fork() has returned */
#define CHILD_TIMEOUT 40 /* the parent kills a child that has not exited by then */
#define GRANDCHILD_TIMEOUT 20
#define PARENT_ALARM 150 /* below the suite's timeout: name the test that hung */
#define CHILD_OPS 2000

static inline uint64_t seed_of(uint64_t id, size_t n) {
    return (id * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)n * 0xC2B2AE3D27D4EB4Full) ^ 0x5BD1E995ull;
}
static void fill(void *p, size_t n, uint64_t id) {
    uint64_t s = seed_of(id, n);
    unsigned char *b = p;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t v = s + k;
        memcpy(b + k, &v, 8);
    }
    for (; k < n; k++) b[k] = (unsigned char)(s >> (k % 8));
}
static int intact(const void *p, size_t n, uint64_t id) {
    uint64_t s = seed_of(id, n);
    const unsigned char *b = p;
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        uint64_t v;
        memcpy(&v, b + k, 8);
        if (v != s + k) return 0;
    }
    for (; k < n; k++)
        if (b[k] != (unsigned char)(s >> (k % 8))) return 0;
    return 1;
}

static size_t rand_size(uint64_t *rs) {
    uint64_t r = tl_rand(rs);
    unsigned c = (unsigned)(r % 1000);
    r >>= 10;
    if (c < 600) return r % 257;
    if (c < 920) return 257 + r % 4000;
    if (c < 997) return 4257 + r % (28 * 1024);
    return 32 * 1024 + r % (512 * 1024); /* large objects */
}

struct obj {
    void *p;
    size_t n;
    uint64_t id;
};

/* ---- workers ------------------------------------------------------------ */

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct obj pool[POOL];
static struct obj stable[NWORK * STABLE_PER_WORKER];
static atomic_int stop_workers, workers_ready, worker_errors;
static atomic_long worker_ops;

static void *worker(void *arg) {
    int idx = (int)(intptr_t)arg;
    uint64_t rs = 0xABCDEFull * (uint64_t)(idx + 1), id = (uint64_t)idx << 48;
    for (int i = 0; i < STABLE_PER_WORKER; i++) {
        struct obj *o = &stable[idx * STABLE_PER_WORKER + i];
        o->n = rand_size(&rs);
        o->id = ++id;
        o->p = i % 3 ? malloc(o->n) : calloc(1, o->n);
        if (!o->p) {
            atomic_fetch_add(&worker_errors, 1);
            continue;
        }
        fill(o->p, o->n, o->id);
    }
    atomic_fetch_add(&workers_ready, 1);
    long ops = 0;
    while (!atomic_load_explicit(&stop_workers, memory_order_relaxed)) {
        struct obj o;
        o.n = rand_size(&rs);
        o.id = ++id;
        unsigned k = (unsigned)(tl_rand(&rs) % 10);
        if (k < 6)
            o.p = malloc(o.n);
        else if (k < 8)
            o.p = calloc(1, o.n);
        else if (k < 9)
            o.p = aligned_alloc(64, o.n);
        else {
            o.n += 1; /* never realloc(p, 0) */
            o.p = realloc(malloc(o.n / 2 + 1), o.n);
        }
        if (!o.p) {
            atomic_fetch_add(&worker_errors, 1);
            continue;
        }
        fill(o.p, o.n, o.id);
        int slot = (int)(tl_rand(&rs) % POOL);
        pthread_mutex_lock(&pool_mu);
        struct obj old = pool[slot];
        pool[slot] = o;
        pthread_mutex_unlock(&pool_mu);
        if (old.p) {
            if (!intact(old.p, old.n, old.id)) atomic_fetch_add(&worker_errors, 1);
            free(old.p);
        }
        ops += 2;
        /* leave the CPU to the children now and then (2 cores) */
        if (ops % 32 == 0) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_fetch_add(&worker_ops, ops);
    return NULL;
}

static pthread_t wth[NWORK];

static int start_workers(void) {
    atomic_store(&stop_workers, 0);
    atomic_store(&workers_ready, 0);
    for (int i = 0; i < NWORK; i++)
        if (pthread_create(&wth[i], NULL, worker, (void *)(intptr_t)i) != 0) return 0;
    while (atomic_load(&workers_ready) < NWORK) sched_yield();
    return 1;
}
static void stop_and_free_workers(void) {
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < NWORK; i++) pthread_join(wth[i], NULL);
    for (int i = 0; i < POOL; i++) {
        if (pool[i].p && !intact(pool[i].p, pool[i].n, pool[i].id)) atomic_fetch_add(&worker_errors, 1);
        free(pool[i].p);
        pool[i].p = NULL;
    }
    for (int i = 0; i < NWORK * STABLE_PER_WORKER; i++) {
        if (stable[i].p && !intact(stable[i].p, stable[i].n, stable[i].id)) atomic_fetch_add(&worker_errors, 1);
        free(stable[i].p);
        stable[i].p = NULL;
    }
}

/* ---- waiting with a deadline ------------------------------------------- */

/* The stacks of a hung process, as '#' lines (shown by tests/run.sh), when
 * gdb is installed: a hang in fork handling is rare and needs them. */
static void dump_stacks(pid_t pid) {
    if (access("/usr/bin/gdb", X_OK) != 0) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd,
             "gdb -batch -nx -p %d -ex 'thread apply all bt' 2>&1 | grep -E '^(Thread|#)' | sed 's/^/# hung %d: /' | head -100",
             (int)pid, (int)pid);
    fflush(stdout);
    int rc = system(cmd);
    (void)rc;
}

/* Wait for pid; a child that hangs (for instance in the allocator's atfork
 * child handler, before its own alarm() could be set) is killed after
 * timeout_s. Returns 1 if it exited by itself, 0 if it was killed, -1 on error. */
static int wait_child(pid_t pid, int *st, double timeout_s) {
    double deadline = tl_now() + timeout_s;
    long nap_ns = 20 * 1000;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno != EINTR) return -1;
        if (tl_now() > deadline) {
            dump_stacks(pid);
            kill(pid, SIGKILL);
            while (waitpid(pid, st, 0) < 0 && errno == EINTR) {
            }
            return 0;
        }
        struct timespec ts = {0, nap_ns};
        nanosleep(&ts, NULL);
        if (nap_ns < 2 * 1000 * 1000) nap_ns *= 2;
    }
}

static const char *volatile hung_test = "?";
static void parent_alarm(int sig) {
    (void)sig;
    char msg[200];
    int n = snprintf(msg, sizeof msg, "FAIL %s: no progress for %d s (deadlock in the parent?)\n", hung_test,
                     PARENT_ALARM);
    ssize_t w = write(1, msg, (size_t)n);
    (void)w;
    _exit(1);
}
static void arm_parent_alarm(const char *test) {
    hung_test = test;
    signal(SIGALRM, parent_alarm);
    alarm(PARENT_ALARM);
}

/* ---- the child ------------------------------------------------------------ */

static int report_fd = -1;

__attribute__((noreturn, format(printf, 2, 3))) static void child_fail(int code, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (report_fd >= 0 && n > 0) {
        ssize_t w = write(report_fd, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    _exit(code);
}

#define CHILD_THREADS 2
#define PER_CHILD_THREAD 50
struct child_thread_arg {
    uint64_t seed;
    struct obj objs[PER_CHILD_THREAD];
    int ok;
};

static void *child_thread(void *arg) {
    struct child_thread_arg *a = arg;
    uint64_t rs = a->seed;
    for (int i = 0; i < 500; i++) {
        size_t n = rand_size(&rs) % 5000;
        void *p = malloc(n);
        if (!p) return NULL;
        fill(p, n, (uint64_t)i);
        if (!intact(p, n, (uint64_t)i)) return NULL;
        free(p);
    }
    /* objects handed to the child's main thread */
    for (int i = 0; i < PER_CHILD_THREAD; i++) {
        struct obj *o = &a->objs[i];
        o->n = rand_size(&rs);
        o->id = a->seed + (uint64_t)i;
        o->p = malloc(o->n);
        if (!o->p) return NULL;
        fill(o->p, o->n, o->id);
    }
    a->ok = 1;
    return NULL;
}

static void child_work(int depth, uint64_t seed, int use_stable) {
    signal(SIGALRM, SIG_DFL); /* the parent's watchdog handler is inherited */
    alarm(CHILD_ALARM);
    /* objects the parent's worker threads allocated before the fork */
    if (use_stable) {
        for (int i = 0; i < NWORK * STABLE_PER_WORKER; i++) {
            struct obj *o = &stable[i];
            if (!o->p) continue;
            if (!intact(o->p, o->n, o->id)) child_fail(10, "pre-fork object %d (%zu bytes) corrupted in child", i, o->n);
            free(o->p);
        }
    }
    uint64_t rs = seed | 1;
    enum { LIVE = 64 };
    struct obj live[LIVE] = {{0}};
    for (int i = 0; i < CHILD_OPS; i++) {
        struct obj *o = &live[tl_rand(&rs) % LIVE];
        if (o->p) {
            if (!intact(o->p, o->n, o->id)) child_fail(11, "child object of %zu bytes corrupted", o->n);
            free(o->p);
        }
        o->n = rand_size(&rs);
        o->id = seed + (uint64_t)i;
        o->p = (i & 3) == 3 ? calloc(1, o->n) : malloc(o->n);
        if (!o->p) child_fail(12, "child malloc(%zu) failed", o->n);
        fill(o->p, o->n, o->id);
    }
    for (int i = 0; i < LIVE; i++) {
        if (live[i].p && !intact(live[i].p, live[i].n, live[i].id)) child_fail(11, "child object corrupted");
        free(live[i].p);
    }
    /* threads in the child */
    static struct child_thread_arg targs[CHILD_THREADS];
    pthread_t th[CHILD_THREADS];
    for (int t = 0; t < CHILD_THREADS; t++) {
        targs[t].seed = seed * 31 + (uint64_t)t * 1000003;
        targs[t].ok = 0;
        int rc = pthread_create(&th[t], NULL, child_thread, &targs[t]);
        if (rc != 0) child_fail(13, "pthread_create in child failed: %d", rc);
    }
    for (int t = 0; t < CHILD_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < CHILD_THREADS; t++) {
        if (!targs[t].ok) child_fail(14, "child thread %d failed", t);
        for (int i = 0; i < PER_CHILD_THREAD; i++) {
            struct obj *o = &targs[t].objs[i];
            if (!intact(o->p, o->n, o->id)) child_fail(15, "object from child thread corrupted");
            free(o->p);
        }
    }
    /* nested fork */
    if (depth == 0 && seed % 10 == 0) {
        pid_t g = fork();
        if (g < 0) child_fail(16, "nested fork failed: %s", strerror(errno));
        if (g == 0) {
            child_work(1, seed * 7 + 1, 0);
            _exit(0);
        }
        int st = 0;
        if (wait_child(g, &st, GRANDCHILD_TIMEOUT) == 0)
            child_fail(18, "grandchild hung for %d s (deadlock or livelock in fork handling?): killed",
                       GRANDCHILD_TIMEOUT);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            child_fail(17, "grandchild status %#x%s", st,
                       WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (deadlock: alarm)" : "");
    }
}

/* Fork once, run child_work in the child, check the status. Returns 1 if ok,
 * else writes a message to why. */
static int fork_one(uint64_t seed, int use_stable, char *why, size_t whycap) {
    int pfd[2];
    if (pipe(pfd) != 0) {
        snprintf(why, whycap, "pipe: %s", strerror(errno));
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(why, whycap, "fork: %s", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        return 0;
    }
    if (pid == 0) {
        close(pfd[0]);
        report_fd = pfd[1];
        child_work(0, seed, use_stable);
        if (seed & 1) exit(0); /* atexit handlers, stdio flush, allocator exit hooks */
        _exit(0);
    }
    close(pfd[1]);
    int st = 0;
    int waited = wait_child(pid, &st, CHILD_TIMEOUT);
    char msg[256];
    ssize_t n = read(pfd[0], msg, sizeof msg - 1);
    close(pfd[0]);
    msg[n > 0 ? n : 0] = 0;
    if (waited == 0) {
        snprintf(why, whycap,
                 "child %llu hung for %d s (deadlock or livelock in fork handling or in the child): killed %s",
                 (unsigned long long)seed, CHILD_TIMEOUT, msg);
        return 0;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
    if (WIFSIGNALED(st))
        snprintf(why, whycap, "child %llu killed by signal %d%s %s", (unsigned long long)seed, WTERMSIG(st),
                 WTERMSIG(st) == SIGALRM ? " (deadlock: alarm)" : "", msg);
    else
        snprintf(why, whycap, "child %llu exit status %d: %s", (unsigned long long)seed, WEXITSTATUS(st), msg);
    return 0;
}

TEST(fork_while_allocating) {
    arm_parent_alarm("fork_while_allocating");
    atomic_store(&worker_errors, 0);
    CHECK(start_workers());
    char why[400];
    int bad = 0;
    double t0 = tl_now();
    for (int i = 0; i < NFORK; i++) {
        /* the main thread allocates too, between forks */
        void *p = malloc((size_t)i * 100 + 1);
        CHECK(p != NULL);
        if (!fork_one((uint64_t)i, 1, why, sizeof why)) {
            bad = 1;
            break;
        }
        free(p);
    }
    double dt = tl_now() - t0;
    stop_and_free_workers();
    CHECKF(!bad, "%s", why);
    CHECKF(atomic_load(&worker_errors) == 0, "%d worker errors (corruption or failed allocation)",
           atomic_load(&worker_errors));
    alarm(0);
    TLOG("fork_while_allocating: %d forks (+%d nested) in %.2fs, workers did %ld ops", NFORK, NFORK / 10, dt,
         atomic_load(&worker_ops));
}

#define FORKERS 4
#define FORKS_PER_FORKER 30
static atomic_int forker_failed;
static char forker_why[400];

static void *forker(void *arg) {
    int idx = (int)(intptr_t)arg;
    char why[400];
    for (int i = 0; i < FORKS_PER_FORKER; i++) {
        /* seed % 10 is 1 or 2: these children do not nest; odd seeds exit() */
        uint64_t seed = 100000 + (uint64_t)idx * 1000 + (uint64_t)i * 10 + 1 + (uint64_t)(i % 2);
        void *p = malloc(1000 + (size_t)i);
        if (!p) {
            atomic_store(&forker_failed, 1);
            return NULL;
        }
        if (!fork_one(seed, 0, why, sizeof why)) {
            if (atomic_exchange(&forker_failed, 1) == 0) memcpy(forker_why, why, sizeof why);
            free(p);
            return NULL;
        }
        free(p);
    }
    return NULL;
}

TEST(fork_from_worker_threads) {
    arm_parent_alarm("fork_from_worker_threads");
    atomic_store(&worker_errors, 0);
    atomic_store(&forker_failed, 0);
    CHECK(start_workers());
    pthread_t th[FORKERS];
    double t0 = tl_now();
    for (int i = 0; i < FORKERS; i++) CHECK(pthread_create(&th[i], NULL, forker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < FORKERS; i++) pthread_join(th[i], NULL);
    double dt = tl_now() - t0;
    stop_and_free_workers();
    alarm(0);
    CHECKF(!atomic_load(&forker_failed), "%s", forker_why);
    CHECKF(atomic_load(&worker_errors) == 0, "%d worker errors", atomic_load(&worker_errors));
    TLOG("fork_from_worker_threads: %d forks from %d threads in %.2fs", FORKERS * FORKS_PER_FORKER, FORKERS, dt);
}

/* The child's statistics right after a fork while another thread makes
 * released pages Ready again: pages a thread takes and the OS books' count
 * of Prepared bytes must change under one lock the fork handlers hold, or a
 * child forked in between keeps HeapReleased != Prepared for good (a CI
 * failure of stress_all, 2026-11). The recycler frees everything, releases
 * it (gm_release_memory) and allocates again, so nearly every span it takes
 * is made of released pages; the suite runs this with
 * GOMALLOC_FAULT=used:delay=200, which makes each of those transitions take
 * 200 us, so that a fork in the old window was all but certain (every run
 * failed with the old code). Each child checks the heap, quiescent. */
#define RECYCLE_OBJECTS 64
#define BOOK_FORKS 40
static atomic_int recycle_stop;
static atomic_long recycle_rounds;

static void *recycler(void *arg) {
    size_t (*release)(void) = (size_t (*)(void))arg;
    void *objs[RECYCLE_OBJECTS];
    while (!atomic_load(&recycle_stop)) {
        for (int i = 0; i < RECYCLE_OBJECTS; i++) {
            /* 4 KiB objects (spans from the page cache) and 40-80 KiB ones
             * (large spans, straight from the page allocator) */
            size_t n = i % 2 ? 4096 : 40960 + (size_t)i * 640;
            objs[i] = malloc(n);
            if (!objs[i]) {
                atomic_fetch_add(&worker_errors, 1);
                continue;
            }
            memset(objs[i], i, n);
        }
        for (int i = 0; i < RECYCLE_OBJECTS; i++) free(objs[i]);
        release();
        atomic_fetch_add(&recycle_rounds, 1);
    }
    return NULL;
}

static int (*check_heap_fn)(int);
static void child_check_books(void *arg) {
    (void)arg;
    if (check_heap_fn(1 /* GM_CHECK_QUIESCENT */) != 0) _exit(3); /* it printed why */
    _exit(0);
}

TEST(fork_while_pages_made_ready) {
    arm_parent_alarm("fork_while_pages_made_ready");
    size_t (*release)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "gm_release_memory");
    check_heap_fn = (int (*)(int))dlsym(RTLD_DEFAULT, "gm_check_heap");
    if (!release || !check_heap_fn) {
        CHECKF(!tl_gomalloc_active(), "gomalloc is loaded but gm_release_memory/gm_check_heap are not found");
        TLOG("not gomalloc: nothing to check");
        return;
    }
    const char *fault = getenv("GOMALLOC_FAULT");
    TLOG("GOMALLOC_FAULT=%s", fault ? fault : "(unset: the window is not widened)");
    atomic_store(&worker_errors, 0);
    atomic_store(&recycle_stop, 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, recycler, (void *)release) == 0);
    while (atomic_load(&recycle_rounds) < 2) sched_yield();
    char why[600];
    int failures = 0;
    for (int i = 0; i < BOOK_FORKS; i++) {
        int st = tl_run_child(child_check_books, NULL, why, sizeof why, 20);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            if (!failures++) TLOG("child %d: status 0x%x: %s", i, st, why);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&recycle_stop, 1);
    pthread_join(th, NULL);
    alarm(0);
    CHECKF(failures == 0, "%d of %d children found the heap inconsistent right after fork", failures, BOOK_FORKS);
    CHECKF(atomic_load(&worker_errors) == 0, "%d failed allocations", atomic_load(&worker_errors));
    TLOG("%d forks while the recycler made %ld rounds", BOOK_FORKS, atomic_load(&recycle_rounds));
}

TEST_MAIN()

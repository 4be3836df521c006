/*
 * stress_all.c: minutes-long multi-thread stress of the whole API, run
 * with LD_PRELOAD=libgomalloc.so (make stress; a 20 s run is in make test).
 *
 * Worker threads live for a random 20-300 ms and are replaced as they exit,
 * so threads are created and exit continually. Each worker allocates with
 * every API (malloc, calloc, realloc, reallocarray, aligned_alloc,
 * posix_memalign, memalign, valloc, pvalloc, the C++ operators new/delete
 * when the library provides them), frees with free, free_sized and
 * free_aligned_sized, checks malloc_usable_size (and writes the slack),
 * sometimes calls malloc_trim(0), and swaps objects with a shared array of
 * mailboxes, so objects are freed, realloc'd and kept by threads that did
 * not allocate them, often after their owner exited. A forking thread
 * forks every few hundred ms from this threaded state: the child allocates,
 * frees objects it inherited (its own and other threads'), starts a thread,
 * verifies everything and exits. A checker thread runs gm_check_heap()
 * (locked mode) all along.
 *
 * Every object has a descriptor (itself malloc'd, with a magic word) and a
 * fill pattern from a per-object seed, verified whenever a thread touches
 * it and at the end, when everything is freed and gm_check_heap verifies the
 * quiescent heap. Output: "PASS stress_all (...)" or "FAIL stress_all: why"
 * (tests/run.sh conventions), exit status 0 or 1.
 *
 * Environment: STRESS_TIME seconds (default 180), STRESS_THREADS live
 * workers (default 6), STRESS_CHILD_CHECK=1 to run the quiescent heap check
 * in fork children too (see README: a child inherits other threads'
 * in-flight lock-free operations frozen half-done).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- Failures -------------------------------------------------------------- */

static _Atomic int failed;

/* Report once (write(2) only: also used in fork children) and count. */
static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    if (atomic_fetch_add(&failed, 1) < 5) {
        if (write(2, "stress_all: ", 12) < 0 || write(2, buf, (size_t)n) < 0) {
        }
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s) {
    uint64_t x = *s ? *s : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* ---- Optional API (resolved at start) --------------------------------------- */

static void (*p_free_sized)(void *, size_t);
static void (*p_free_aligned_sized)(void *, size_t, size_t);
static void *(*p_new)(size_t);                 /* operator new(size_t) */
static void (*p_delete_sized)(void *, size_t); /* operator delete(void*, size_t) */
static void *(*p_new_aligned)(size_t, size_t); /* operator new(size_t, align_val_t) */
static void (*p_delete_aligned)(void *, size_t); /* operator delete(void*, align_val_t) */
static int (*p_check_heap)(int);

static void resolve(void) {
    p_free_sized = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    p_free_aligned_sized = (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    p_new = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "_Znwm");
    p_delete_sized = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "_ZdlPvm");
    p_new_aligned = (void *(*)(size_t, size_t))dlsym(RTLD_DEFAULT, "_ZnwmSt11align_val_t");
    p_delete_aligned = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "_ZdlPvSt11align_val_t");
    p_check_heap = (int (*)(int))dlsym(RTLD_DEFAULT, "gm_check_heap");
}

/* ---- Objects ------------------------------------------------------------------ */

enum how {
    H_MALLOC, H_CALLOC, H_REALLOC, H_REALLOCARRAY, H_ALIGNED_ALLOC, H_POSIX_MEMALIGN, H_MEMALIGN, H_VALLOC,
    H_PVALLOC, H_NEW, H_NEW_ALIGNED, NUM_HOW
};

#define MAGIC 0x6f626a5f67756d21ull

struct obj {
    uint64_t magic;
    unsigned char *p;
    size_t size, align;
    uint64_t seed;
    uint8_t how;
    bool sized_ok; /* free_sized / free_aligned_sized may be given size */
};

static inline uint64_t pat(uint64_t seed, size_t i) { return (seed * 0x9E3779B97F4A7C15ull) ^ (i * 0xD6E8FEB86659FD93ull); }

/* Full pattern up to 64 KiB; beyond, the first and last 4 KiB and every
 * 512th word. */
static inline bool sampled(size_t i, size_t w, size_t n) {
    return n <= (64u << 10) || i < 512 || i + 512 >= w || i % 512 == 0;
}

static void fill(struct obj *o) {
    size_t w = o->size / 8;
    uint64_t *q = (uint64_t *)o->p;
    for (size_t i = 0; i < w; i++)
        if (sampled(i, w, o->size)) q[i] = pat(o->seed, i);
    for (size_t b = w * 8; b < o->size; b++) o->p[b] = (unsigned char)(o->seed + b);
}

/* Does o->p hold its pattern over [0, n)? (n <= o->size) */
static bool intact(const struct obj *o, size_t n) {
    size_t w = o->size / 8, nw = n / 8;
    const uint64_t *q = (const uint64_t *)o->p;
    for (size_t i = 0; i < nw; i++)
        if (sampled(i, w, o->size) && q[i] != pat(o->seed, i)) return false;
    for (size_t b = nw * 8; b < n; b++) {
        unsigned char want = b < w * 8 ? (unsigned char)(pat(o->seed, b / 8) >> (8 * (b % 8))) : (unsigned char)(o->seed + b);
        if (b < w * 8 && !sampled(b / 8, w, o->size)) continue;
        if (o->p[b] != want) return false;
    }
    return true;
}

static bool verify(const struct obj *o, const char *when) {
    if (o->magic != MAGIC) {
        failf("%s: descriptor %p corrupted (magic %llx)", when, (const void *)o, (unsigned long long)o->magic);
        return false;
    }
    if (!intact(o, o->size)) {
        failf("%s: object %p (%zu bytes, allocated by %d) corrupted", when, (void *)o->p, o->size, o->how);
        return false;
    }
    size_t us = malloc_usable_size(o->p);
    if (us < o->size) {
        failf("%s: usable size %zu of %p < %zu", when, us, (void *)o->p, o->size);
        return false;
    }
    return true;
}

static size_t pick_size(uint64_t *r) {
    uint64_t x = rnd(r);
    switch (x % 16) {
    case 0: return x >> 40 & 7;
    case 1: case 2: case 3: case 4: case 5: return 1 + (x >> 32) % 128;
    case 6: case 7: case 8: return 1 + (x >> 32) % 1024;
    case 9: case 10: return 1 + (x >> 32) % 8192;
    case 11: return 1 + (x >> 32) % 32768;
    case 12: return 32768 + (x >> 32) % 100000;
    case 13: return (x >> 40) % 50 == 0 ? 1 + (x >> 32) % (3u << 20) : 1 + (x >> 32) % 300;
    default: return 1 + (x >> 32) % 64;
    }
}

static size_t pick_align(uint64_t *r) { return (size_t)1 << (rnd(r) % 17); } /* 1 B .. 64 KiB */

static _Atomic uint64_t seed_counter;

/* A new object made by one of the allocation APIs. */
static struct obj *make(uint64_t *r) {
    struct obj *o = malloc(sizeof *o);
    if (!o) {
        failf("malloc(descriptor) failed");
        return NULL;
    }
    memset(o, 0, sizeof *o);
    o->magic = MAGIC;
    o->seed = atomic_fetch_add_explicit(&seed_counter, 1, memory_order_relaxed) * 7919 + 1;
    o->sized_ok = true;
    size_t size = pick_size(r), align = 1;
    uint8_t how = (uint8_t)(rnd(r) % NUM_HOW);
    void *p = NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    switch (how) {
    case H_MALLOC: p = malloc(size); break;
    case H_CALLOC: {
        size_t n = 1 + rnd(r) % 8, each = size / n + 1;
        size = n * each;
        p = calloc(n, each);
        if (p)
            for (size_t i = 0; i < size; i++)
                if (((unsigned char *)p)[i]) {
                    failf("calloc(%zu, %zu) = %p: byte %zu not zero", n, each, p, i);
                    break;
                }
        break;
    }
    case H_REALLOC: p = realloc(NULL, size); break;
    case H_REALLOCARRAY: {
        size_t n = 1 + rnd(r) % 4, each = size / n + 1;
        size = n * each;
        p = reallocarray(NULL, n, each);
        break;
    }
    case H_ALIGNED_ALLOC: align = pick_align(r); p = aligned_alloc(align, size); break;
    case H_POSIX_MEMALIGN:
        align = pick_align(r);
        if (align < sizeof(void *)) align = sizeof(void *);
        if (posix_memalign(&p, align, size) != 0) p = NULL;
        break;
    case H_MEMALIGN: align = pick_align(r); p = memalign(align, size); break;
    case H_VALLOC: align = page; p = valloc(size); break;
    case H_PVALLOC:
        align = page;
        size = size ? (size + page - 1) / page * page : page; /* pvalloc rounds up */
        p = pvalloc(size);
        break;
    case H_NEW:
        if (!p_new) { p = malloc(size); how = H_MALLOC; break; }
        p = p_new(size);
        break;
    case H_NEW_ALIGNED:
        if (!p_new_aligned) { p = malloc(size); how = H_MALLOC; break; }
        align = (size_t)32 << rnd(r) % 8;
        p = p_new_aligned(size, align);
        break;
    }
    if (!p) {
        failf("allocation %d of %zu bytes (align %zu) failed: errno %d", how, size, align, errno);
        free(o);
        return NULL;
    }
    size_t min_align = size >= 16 ? 16 : 8;
    if ((uintptr_t)p % (align > min_align ? align : min_align))
        failf("allocation %d of %zu bytes (align %zu) = %p: misaligned", how, size, align, p);
    o->p = p;
    o->size = size;
    o->align = align;
    o->how = how;
    fill(o);
    return o;
}

/* Free an object with the function that matches how it was made. */
static void destroy(struct obj *o, uint64_t *r, const char *who) {
    if (!verify(o, who)) return; /* leak it: it is corrupt */
    int e = errno = 4242;
    uint64_t x = rnd(r);
    switch (o->how) {
    case H_NEW: p_delete_sized(o->p, o->size); break;
    case H_NEW_ALIGNED: p_delete_aligned(o->p, o->align); break;
    case H_MALLOC: case H_CALLOC: case H_REALLOC: case H_REALLOCARRAY:
        if (x % 3 == 0 && p_free_sized && o->sized_ok)
            p_free_sized(o->p, o->size);
        else
            free(o->p);
        break;
    case H_ALIGNED_ALLOC:
        if (x % 3 == 0 && p_free_aligned_sized && o->sized_ok)
            p_free_aligned_sized(o->p, o->align, o->size);
        else
            free(o->p);
        break;
    default: free(o->p); break;
    }
    if (errno != e) failf("%s: free changed errno to %d", who, errno);
    o->magic = 0;
    free(o);
}

/* realloc (or reallocarray) an object to a new size, keeping its prefix. */
static void resize(struct obj *o, uint64_t *r) {
    if (o->how == H_NEW || o->how == H_NEW_ALIGNED || !verify(o, "resize")) return;
    size_t n = pick_size(r);
    if (n == 0) n = 1;
    size_t keep = n < o->size ? n : o->size;
    struct obj old = *o;
    unsigned char *q;
    if (rnd(r) % 4 == 0) {
        size_t k = 1 + rnd(r) % 4;
        n = (n / k + 1) * k;
        keep = n < o->size ? n : o->size;
        q = reallocarray(o->p, k, n / k);
    } else {
        q = realloc(o->p, n);
    }
    if (!q) {
        failf("realloc(%p, %zu) failed", (void *)o->p, n);
        return;
    }
    old.p = q;
    if (!intact(&old, keep)) failf("realloc(%zu -> %zu) lost the contents", o->size, n);
    o->p = q;
    o->size = n;
    o->align = 1;
    o->how = H_REALLOC;
    o->sized_ok = true;
    o->seed += 1000003;
    fill(o);
}

/* ---- Shared state ------------------------------------------------------------ */

#define NBOX 2048
static struct obj *_Atomic boxes[NBOX];
static _Atomic int stop;
static _Atomic uint64_t n_ops, n_threads, n_forks, n_swaps, n_trims;

/* Put o (may be NULL) in a random box; returns what was there. */
static struct obj *swap_box(struct obj *o, uint64_t *r) {
    struct obj *got = atomic_exchange_explicit(&boxes[rnd(r) % NBOX], o, memory_order_acq_rel);
    atomic_fetch_add_explicit(&n_swaps, 1, memory_order_relaxed);
    return got;
}

/* ---- Workers -------------------------------------------------------------------- */

#define LOCAL 128

struct worker {
    pthread_t t;
    _Atomic int state; /* 0 free, 1 running, 2 finished */
    uint64_t seed;
};

static void work(uint64_t *r, double until, struct obj **local, unsigned *nlocal) {
    unsigned n = *nlocal;
    uint64_t ops = 0;
    while (now() < until && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int burst = 0; burst < 64; burst++, ops++) {
            unsigned k = (unsigned)(rnd(r) % 100);
            if (k < 30 || n == 0) {
                struct obj *o = make(r);
                if (!o) continue;
                if (n == LOCAL) {
                    unsigned i = (unsigned)(rnd(r) % n);
                    destroy(local[i], r, "evict");
                    local[i] = o;
                } else {
                    local[n++] = o;
                }
            } else if (k < 50) {
                unsigned i = (unsigned)(rnd(r) % n);
                destroy(local[i], r, "free");
                local[i] = local[--n];
            } else if (k < 60) {
                resize(local[rnd(r) % n], r);
            } else if (k < 75) {
                /* swap with a mailbox: the object we get was made by another
                 * thread, maybe one that exited */
                unsigned i = (unsigned)(rnd(r) % n);
                struct obj *got = swap_box(local[i], r);
                if (got) {
                    if (verify(got, "from a mailbox")) {
                        local[i] = got;
                        if (rnd(r) % 2) resize(got, r);
                    } else {
                        local[i] = local[--n];
                    }
                } else {
                    local[i] = local[--n];
                }
            } else if (k < 85) {
                struct obj *o = local[rnd(r) % n];
                if (!verify(o, "usable size")) continue;
                size_t us = malloc_usable_size(o->p);
                memset(o->p + o->size, 0x5A, us - o->size); /* the slack is ours */
            } else if (k < 95) {
                /* take from a mailbox and free right here (cross-thread free) */
                struct obj *got = swap_box(NULL, r);
                if (got) destroy(got, r, "mailbox free");
            } else if (rnd(r) % 2000 == 0) {
                malloc_trim(0);
                atomic_fetch_add_explicit(&n_trims, 1, memory_order_relaxed);
            }
        }
    }
    atomic_fetch_add_explicit(&n_ops, ops, memory_order_relaxed);
    *nlocal = n;
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    uint64_t r = w->seed;
    struct obj *local[LOCAL];
    unsigned n = 0;
    double life = 0.02 + (double)(rnd(&r) % 280) / 1000.0;
    work(&r, now() + life, local, &n);
    /* exit with objects alive: most go to the mailboxes (freed later by
     * other threads, after their spans were handed back), some are freed */
    for (unsigned i = 0; i < n; i++) {
        if (rnd(&r) % 4 == 0) {
            destroy(local[i], &r, "exit free");
        } else {
            struct obj *got = swap_box(local[i], &r);
            if (got) destroy(got, &r, "exit swap");
        }
    }
    atomic_store(&w->state, 2);
    return NULL;
}

/* ---- fork ------------------------------------------------------------------------- */

static bool child_check;

static void *child_thread(void *arg) {
    uint64_t r = (uintptr_t)arg;
    struct obj *local[LOCAL];
    unsigned n = 0;
    work(&r, now() + 0.05, local, &n);
    for (unsigned i = 0; i < n; i++) destroy(local[i], &r, "child thread");
    return NULL;
}

static void child_main(uint64_t seed, struct obj **mine, unsigned nmine) {
    alarm(30);
    if (child_check && p_check_heap && p_check_heap(1) != 0) failf("child: heap check failed right after fork");
    uint64_t r = seed;
    /* what this thread had: still ours, still intact */
    for (unsigned i = 0; i < nmine; i++) destroy(mine[i], &r, "child: inherited own");
    /* other threads' objects: their owners do not exist here */
    for (unsigned i = 0; i < 200; i++) {
        struct obj *got = swap_box(NULL, &r);
        if (got) destroy(got, &r, "child: inherited other");
    }
    struct obj *local[LOCAL];
    unsigned n = 0;
    work(&r, now() + 0.05, local, &n);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(seed + 1)) == 0) pthread_join(t, NULL);
    else failf("child: pthread_create failed");
    for (unsigned i = 0; i < n; i++) destroy(local[i], &r, "child: own");
    if (child_check && p_check_heap && p_check_heap(1) != 0) failf("child: heap check failed");
    _exit(atomic_load(&failed) ? 1 : 0);
}

static void *forker(void *arg) {
    uint64_t r = (uintptr_t)arg;
    struct obj *mine[LOCAL];
    unsigned n = 0;
    while (!atomic_load(&stop)) {
        work(&r, now() + 0.1 + (double)(rnd(&r) % 200) / 1000.0, mine, &n);
        if (atomic_load(&stop)) break;
        pid_t pid = fork();
        if (pid < 0) {
            failf("fork failed: errno %d", errno);
            break;
        }
        if (pid == 0) child_main(rnd(&r), mine, n);
        atomic_fetch_add(&n_forks, 1);
        int status = 0;
        double t0 = now();
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (now() - t0 > 40) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                failf("fork child hung (killed after 40 s)");
                break;
            }
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failf("fork child failed: %s %d", WIFSIGNALED(status) ? "signal" : "exit status",
                  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    for (unsigned i = 0; i < n; i++) destroy(mine[i], &r, "forker exit");
    return NULL;
}

static void *checker(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        if (p_check_heap && p_check_heap(0) != 0) failf("gm_check_heap (locked mode) failed");
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- main ----------------------------------------------------------------------- */

int main(void) {
    const char *e = getenv("STRESS_TIME");
    double duration = e ? atof(e) : 180;
    e = getenv("STRESS_THREADS");
    unsigned nworkers = e ? (unsigned)atoi(e) : 6;
    if (nworkers < 1) nworkers = 1;
    if (nworkers > 64) nworkers = 64;
    child_check = getenv("STRESS_CHILD_CHECK") && atoi(getenv("STRESS_CHILD_CHECK"));
    resolve();
    if (!p_check_heap) {
        printf("FAIL stress_all: gomalloc is not loaded (run with LD_PRELOAD=libgomalloc.so)\n");
        return 1;
    }
    printf("# stress_all: %.0f s, %u workers, free_sized %s, C++ operators %s\n", duration, nworkers,
           p_free_sized ? "yes" : "no", p_new ? "yes" : "no");
    fflush(stdout);

    double t0 = now(), end = t0 + duration;
    static struct worker w[64];
    pthread_t fk, ck;
    pthread_create(&fk, NULL, forker, (void *)(uintptr_t)777);
    pthread_create(&ck, NULL, checker, NULL);
    uint64_t r = 42;
    double next_report = t0 + 30;
    while (now() < end && atomic_load(&failed) == 0) {
        for (unsigned i = 0; i < nworkers; i++) {
            int st = atomic_load(&w[i].state);
            if (st == 2) {
                pthread_join(w[i].t, NULL);
                atomic_store(&w[i].state, 0);
                st = 0;
            }
            if (st == 0) {
                w[i].seed = rnd(&r);
                atomic_store(&w[i].state, 1);
                if (pthread_create(&w[i].t, NULL, worker_main, &w[i]) != 0) {
                    failf("pthread_create failed");
                    atomic_store(&w[i].state, 0);
                }
                atomic_fetch_add(&n_threads, 1);
            }
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        if (now() > next_report) {
            printf("# %.0f s: %llu ops, %llu threads, %llu forks\n", now() - t0,
                   (unsigned long long)atomic_load(&n_ops), (unsigned long long)atomic_load(&n_threads),
                   (unsigned long long)atomic_load(&n_forks));
            fflush(stdout);
            next_report += 30;
        }
    }
    atomic_store(&stop, 1);
    for (unsigned i = 0; i < nworkers; i++)
        if (atomic_load(&w[i].state) != 0) pthread_join(w[i].t, NULL);
    pthread_join(fk, NULL);
    pthread_join(ck, NULL);
    /* everything left is in the mailboxes: verify and free, then check the
     * quiescent heap */
    for (unsigned i = 0; i < NBOX; i++) {
        struct obj *o = atomic_exchange(&boxes[i], NULL);
        if (o) destroy(o, &r, "final");
    }
    if (p_check_heap(1) != 0) failf("gm_check_heap (quiescent) failed at the end");
    double dt = now() - t0;
    if (atomic_load(&failed)) {
        printf("FAIL stress_all: %d problems (first ones on stderr) after %.0f s\n", atomic_load(&failed), dt);
        return 1;
    }
    printf("PASS stress_all (%.0f s: %llu ops, %llu threads, %llu forks, %llu mailbox swaps, %llu trims)\n", dt,
           (unsigned long long)atomic_load(&n_ops), (unsigned long long)atomic_load(&n_threads),
           (unsigned long long)atomic_load(&n_forks), (unsigned long long)atomic_load(&n_swaps),
           (unsigned long long)atomic_load(&n_trims));
    return 0;
}

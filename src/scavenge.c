/*
 * scavenge.c: giving free pages back to the OS.
 *
 * Owns: the background scavenger thread, its pacing and goal, the inline
 * mode, the soft and hard memory limit, gm_release_memory / malloc_trim.
 * Go counterpart: mgcscavenge.go (and the memory-limit half of mgcpacer.go).
 *
 * What is released: free pages of the page allocator that are not already
 * scavenged, highest addresses first (allocation is first fit from the
 * bottom, so the top of the heap is the least likely to be reused). A run is
 * claimed under the heap lock, released with madvise(MADV_DONTNEED) without
 * it (os_linux.c: Ready -> Prepared, RSS drops at once), and given back
 * marked scavenged. Unless forced, 2 MiB regions that are >= 96.9% in use
 * are left alone so a dense huge page is not split (Go's density rule), and
 * in a heap marked for huge pages so is any region with a page in use
 * (pagealloc.c, region_releasable: khugepaged would fill it in again).
 *
 * How much: the goal is to keep retained memory (heap mapped minus released)
 * at 1.1 x the recent peak of memory in use plus 4 MiB, where the peak decays
 * with a half-life of half a second (Go scales its goal with the GC's heap
 * goal; without a collector we use a time-decayed peak instead). With a memory
 * limit (GOMALLOC_MEMLIMIT, gm_set_memory_limit) the scavenger also works,
 * forced, whenever Ready memory passes 95% of the limit, and an allocation
 * that would pass the limit first releases the excess synchronously and asks
 * threads to flush their page caches; with GOMALLOC_MEMLIMIT_HARD=1 it fails
 * with ENOMEM instead of passing it.
 *
 * Pacing: the background thread releases in runs of up to 4 MiB (each
 * madvise call has a fixed cost far above its per-page cost on virtual
 * machines, so few large calls beat many small ones) within a CPU budget:
 * a token bucket that accrues p% of one CPU (GOMALLOC_SCAVENGE_PERCENT,
 * default 1) and holds at most 100 ms, so the scavenger averages at most p%
 * over any stretch much longer than 10 s while a sudden drop of 1.5 GiB is
 * returned as fast as the goal decays (about 1 s of CPU-bound work would
 * otherwise take a minute at 1%). It is started lazily,
 * once a free has left more than the goal resident, by the next allocation
 * slow path (never inside free: see scavenge.h; the freeing threads work
 * inline until then), sleeps while there is nothing to do, and is started
 * again the same way after fork.
 * GOMALLOC_SCAVENGE=inline does the same work on the threads that free, within
 * the same CPU budget; =off never releases anything except on request.
 *
 * Out of memory: a refused madvise gives the run back unreleased and ends
 * the pass; a scavenger thread that cannot be created (no memory for its
 * stack) leaves the work to the freeing threads, as in inline mode.
 *
 * Locking: scav.lock (a leaf) guards the goal state and thread start; the
 * heap lock is taken around each claim and give-back, never across madvise.
 * scav.run is held across each claim / madvise / give-back, so that a
 * statistics reader (stats.c) never sees a run in flight (its pages neither
 * free nor in use, its bytes Prepared but not yet counted released); it is
 * taken with at most the fallback-cache lock held, before any other.
 */
#include "scavenge.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "gomalloc.h"
#include "malloc.h"
#include "mcache.h"
#include "mheap.h"
#include "options.h"
#include "os.h"
#include "print.h"

struct scavenge_stats scavenge_stats;
_Atomic uint64_t memory_limit = UINT64_MAX;

enum { THREAD_NONE, THREAD_STARTING, THREAD_RUNNING, THREAD_FAILED };

#define RUN_PAGES (4u << 20 >> PAGE_SHIFT) /* the largest run per madvise */
#define GOAL_SLACK (4u << 20)
#define PEAK_HALF_LIFE_NS 500000000ull
#define BURST_NS 100000000ll /* CPU the scavenger may spend at once: 10 s of 1% */

static struct {
    mutex lock;                /* goal state, inline budget */
    mutex run;                 /* one claim / release / give-back at a time */
    _Atomic int thread_state;
    _Atomic uint32_t wake;     /* futex word: bumped to wake the thread */
    _Atomic int sleeping;      /* SLEEP_NONE, or how the thread waits */
    _Atomic int exiting;
    uint64_t peak;             /* decayed peak of bytes in use */
    uint64_t peak_ns;          /* when peak was last updated */
    int64_t tokens;            /* CPU budget left, ns (token bucket) */
    uint64_t tokens_ns;        /* when tokens was last refilled */
} scav;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void scavenge_init(void) {
    mutex_reinit(&scav.lock);
    if (options.memlimit) atomic_store(&memory_limit, options.memlimit);
    scav.tokens = BURST_NS;
    scav.tokens_ns = mono_ns();
}

/* The CPU budget, a token bucket: p% of one CPU accrues over wall time, at
 * most BURST_NS of it saved up. Returns the budget left (scav.lock held). */
static int64_t refill_tokens(void) {
    uint64_t now = mono_ns();
    unsigned pct = options.scavenge_percent ? options.scavenge_percent : 1;
    scav.tokens += (int64_t)((now - scav.tokens_ns) / 100 * pct);
    if (scav.tokens > BURST_NS) scav.tokens = BURST_NS;
    scav.tokens_ns = now;
    return scav.tokens;
}

static void spend_tokens(uint64_t ns) {
    lock(&scav.lock);
    scav.tokens -= (int64_t)ns;
    unlock(&scav.lock);
}

/* ---- Releasing ------------------------------------------------------------ */

/* While > 0, no new run is claimed (scavenge() returns what it has done)
 * and no scavenger thread is started: a fork in progress, in the parent and
 * in the child until its heap is repaired. Runs in flight are excluded by
 * scav.run (fork_prepare holds it). */
static _Atomic int claims_paused;

void scavenge_pause(bool on) {
    atomic_fetch_add_explicit(&claims_paused, on ? 1 : -1, memory_order_acq_rel);
}

size_t scavenge(size_t bytes, bool force) {
    size_t done = 0;
    uintptr_t cursor = UINTPTR_MAX;
    int saved = errno;
    while (done < bytes) {
        if (atomic_load_explicit(&claims_paused, memory_order_acquire) > 0) break;
        size_t rem = bytes - done;
        uintptr_t want = rem / PAGE_SIZE + (rem % PAGE_SIZE != 0), n = 0;
        if (want > RUN_PAGES) want = RUN_PAGES;
        lock(&scav.run);
        lock(&mheap_.lock);
        uintptr_t base = pages_scavenge_claim(&mheap_.pages, want, force, &cursor, &n);
        unlock(&mheap_.lock);
        if (!base) {
            unlock(&scav.run);
            break;
        }
        uint64_t t0 = thread_cpu_ns();
        int err = sys_unused((void *)base, n * PAGE_SIZE);
        uint64_t dt = thread_cpu_ns() - t0;
        lock(&mheap_.lock);
        if (err) {
            /* Refused (mlock'ed memory): the run goes back as it was, free
             * and not scavenged; try again at the next request. */
            pages_scavenge_release(&mheap_.pages, base, n, false);
            unlock(&mheap_.lock);
            unlock(&scav.run);
            atomic_fetch_add_explicit(&scavenge_stats.work_ns, dt, memory_order_relaxed);
            break;
        }
        pages_scavenge_release(&mheap_.pages, base, n, true);
        unlock(&mheap_.lock);
        unlock(&scav.run);
        atomic_fetch_add_explicit(&scavenge_stats.work_ns, dt, memory_order_relaxed);
        atomic_fetch_add_explicit(&scavenge_stats.released_bytes, n * PAGE_SIZE, memory_order_relaxed);
        atomic_fetch_add_explicit(&scavenge_stats.runs, 1, memory_order_relaxed);
        done += n * PAGE_SIZE;
    }
    errno = saved;
    return done;
}

void scavenge_flush_page_caches(void) { mcache_flush_all_page_caches(); }

void scavenge_run_lock(void) { lock(&scav.run); }
void scavenge_run_unlock(void) { unlock(&scav.run); }

EXPORT size_t gm_release_memory(void) {
    if (!malloc_init()) return 0;
    if (DEBUG_CHECKS) heap_check_or_throw(HEAP_CHECK_LOCKED);
    mcache_release_empty(); /* other threads' kept empty spans are theirs (at most EMPTY_KEEP_BYTES each) */
    scavenge_flush_page_caches();
    size_t n = scavenge(SIZE_MAX, true);
    if (DEBUG_CHECKS) heap_check_or_throw(HEAP_CHECK_LOCKED);
    if (options.verbose) print_err("gomalloc: released %zu KiB to the OS\n", n >> 10);
    return n;
}

EXPORT uint64_t gm_set_memory_limit(uint64_t limit) {
    bool ready = malloc_init();
    uint64_t old = atomic_exchange(&memory_limit, limit ? limit : UINT64_MAX);
    if (ready) scavenge_poke();
    return old;
}

EXPORT uint64_t gm_get_memory_limit(void) {
    malloc_init(); /* GOMALLOC_MEMLIMIT is read at start-up */
    return atomic_load(&memory_limit);
}

/* ---- Goal ------------------------------------------------------------------ */

struct need {
    size_t bytes;
    bool force;
    bool decaying; /* the goal is still falling: look again soon */
    bool pending;  /* enough free, unreleased memory that the falling goal
                      will want some of it back: keep a scavenger around */
};

static struct need compute_need(void) {
    struct need n = {0, false, false, false};
    uint64_t inuse = atomic_load_explicit(&mheap_.pages_inuse, memory_order_relaxed) * PAGE_SIZE;
    uint64_t now = mono_ns();
    lock(&scav.lock);
    uint64_t peak = scav.peak;
    if (peak > inuse) {
        /* peak * 2^(-dt / half-life), in steps of a tenth of a half-life */
        uint64_t steps = (now - scav.peak_ns) / (PEAK_HALF_LIFE_NS / 10);
        for (uint64_t i = 0; i < steps && peak > inuse; i++) peak = peak * 933 / 1000;
        if (steps) scav.peak_ns += steps * (PEAK_HALF_LIFE_NS / 10);
    } else {
        scav.peak_ns = now;
    }
    if (peak < inuse) peak = inuse;
    scav.peak = peak;
    unlock(&scav.lock);
    n.decaying = peak > inuse + GOAL_SLACK;
    uint64_t goal = peak + peak / 10 + GOAL_SLACK;
    /* Read without the heap lock: a heuristic, close enough (both are
     * stored with relaxed atomics, see pagealloc.c and mheap.c). */
    uint64_t released = (__atomic_load_n(&mheap_.pages.scav_pages, __ATOMIC_RELAXED) +
                         atomic_load_explicit(&mheap_.pagecache_scav, memory_order_relaxed)) *
                        PAGE_SIZE;
    uint64_t heap_sys = __atomic_load_n(&mheap_.heap_sys, __ATOMIC_RELAXED);
    uint64_t retained = heap_sys > released ? heap_sys - released : 0;
    if (retained > goal) n.bytes = retained - goal;
    n.pending = n.bytes || (n.decaying && retained > inuse + inuse / 10 + GOAL_SLACK);
    uint64_t limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
    if (limit != UINT64_MAX) {
        uint64_t ready = atomic_load_explicit(&os_stats.ready, memory_order_relaxed);
        uint64_t target = limit / 100 * 95;
        if (ready > target) {
            n.force = true;
            if (ready - target > n.bytes) n.bytes = ready - target;
        }
    }
    if (n.bytes < (1u << 20) && !n.force) n.bytes = 0;
    if (n.force) n.pending = true;
    return n;
}

/* ---- The background thread ------------------------------------------------ */

static void futex_wait_ns(_Atomic uint32_t *word, uint32_t val, uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, ns ? &ts : NULL, NULL, 0);
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* scav.sleeping: how the thread waits. */
enum { SLEEP_NONE = 0, SLEEP_IDLE = 1 /* until poked */, SLEEP_TIMED = 2 /* decaying, or retrying */ };

static void *scavenger_main(void *arg) {
    (void)arg;
    prctl(PR_SET_NAME, "gomalloc-scav");
    unsigned pct = options.scavenge_percent ? options.scavenge_percent : 1;
    while (!atomic_load(&scav.exiting)) {
        uint32_t seq = atomic_load(&scav.wake);
        struct need n = compute_need();
        if (!n.bytes) {
            atomic_store(&scav.sleeping, n.decaying ? SLEEP_TIMED : SLEEP_IDLE);
            futex_wait_ns(&scav.wake, seq, n.decaying ? 100000000ull : 0);
            atomic_store(&scav.sleeping, SLEEP_NONE);
            continue;
        }
        lock(&scav.lock);
        int64_t tokens = refill_tokens();
        unlock(&scav.lock);
        if (tokens <= 0) {
            /* Over budget: sleep until a millisecond of work has accrued. */
            sleep_ns((uint64_t)(-tokens + 1000000) / pct * 100);
            continue;
        }
        uint64_t t0 = thread_cpu_ns();
        size_t got = scavenge(n.bytes < RUN_PAGES * PAGE_SIZE ? n.bytes : RUN_PAGES * PAGE_SIZE, n.force);
        uint64_t dt = thread_cpu_ns() - t0;
        atomic_fetch_add_explicit(&scavenge_stats.background_ns, dt, memory_order_relaxed);
        spend_tokens(dt);
        if (!got) {
            /* Everything left is not releasable now (dense, in use in a
             * huge-page region) or in flight: look again later. */
            atomic_store(&scav.sleeping, SLEEP_TIMED);
            futex_wait_ns(&scav.wake, seq, 1000000000ull);
            atomic_store(&scav.sleeping, SLEEP_NONE);
        }
    }
    return NULL;
}

static void start_thread(void) {
    int expected = THREAD_NONE;
    if (!atomic_compare_exchange_strong(&scav.thread_state, &expected, THREAD_STARTING)) return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the program's signals never land on it */
    pthread_t t;
    int err = pthread_create(&t, &attr, scavenger_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    atomic_store(&scav.thread_state, err ? THREAD_FAILED : THREAD_RUNNING);
    if (err && options.verbose) print_err("gomalloc: cannot start the scavenger thread (error %d)\n", err);
    if (!err && options.verbose) print_err("gomalloc: scavenger thread started\n");
}

_Atomic int scavenge_start_wanted;

void scavenge_heap_grew(uint64_t heap_sys) {
    if (heap_sys < SCAVENGE_THREAD_HEAP || options.scavenge != SCAVENGE_BACKGROUND) return;
    if (atomic_load_explicit(&scav.thread_state, memory_order_relaxed) == THREAD_NONE)
        atomic_store_explicit(&scavenge_start_wanted, 1, memory_order_relaxed);
}

/* (scavenge_poke and scavenge_heap_grew ask, in background mode.) */
void scavenge_start_thread(void) {
    if (atomic_load_explicit(&claims_paused, memory_order_relaxed) > 0) return; /* fork: later */
    atomic_store_explicit(&scavenge_start_wanted, 0, memory_order_relaxed);
    if (atomic_load_explicit(&scav.exiting, memory_order_relaxed)) return;
    int saved = errno; /* (the allocation that starts it succeeded) */
    start_thread();    /* its own allocations see the request cleared */
    errno = saved;
}

/* ---- Inline mode ---------------------------------------------------------- */

static void inline_step(void) {
    uint32_t expected = 0;
    if (!atomic_compare_exchange_strong(&scav.lock.key, &expected, 1)) return; /* someone is at it */
    bool may = refill_tokens() > 0;
    unlock(&scav.lock);
    if (!may) return;
    struct need n = compute_need();
    if (!n.bytes) return;
    uint64_t t0 = thread_cpu_ns();
    scavenge(n.bytes < RUN_PAGES * PAGE_SIZE ? n.bytes : RUN_PAGES * PAGE_SIZE, n.force);
    spend_tokens(thread_cpu_ns() - t0);
}

void scavenge_poke(void) {
    if (options.scavenge == SCAVENGE_OFF || atomic_load_explicit(&scav.exiting, memory_order_relaxed)) return;
    /* paused: fork in progress (never start a thread in the child's fork
     * handler) */
    if (atomic_load_explicit(&claims_paused, memory_order_relaxed) > 0) return;
    if (options.scavenge == SCAVENGE_INLINE) {
        inline_step();
        return;
    }
    int st = atomic_load_explicit(&scav.thread_state, memory_order_relaxed);
    /* Only a thread waiting with no deadline needs waking: a timed wait ends
     * by itself within a second, and waking it at every free made a
     * free-heavy program and the thread take turns on the cores (one futex
     * wake per large free: large-t1 spent 1.15x mimalloc's time). */
    if (st == THREAD_RUNNING && atomic_load_explicit(&scav.sleeping, memory_order_relaxed) != SLEEP_IDLE) return;
    if (st == THREAD_FAILED) {
        inline_step();
        return;
    }
    if (st == THREAD_STARTING) return;
    struct need n = compute_need();
    if (!n.bytes && !n.pending) return;
    if (st == THREAD_NONE) {
        /* Never started from here: a poke may come from a free, and a free
         * may run inside the C library with its locks held (scavenge.h).
         * The next allocation slow path starts it; until then the freeing
         * threads work inline. */
        atomic_store_explicit(&scavenge_start_wanted, 1, memory_order_relaxed);
        inline_step();
        return;
    }
    atomic_fetch_add(&scav.wake, 1);
    syscall(SYS_futex, (uint32_t *)&scav.wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---- Memory limit ------------------------------------------------------- */

bool scavenge_check_limit(size_t ready_bytes) {
    uint64_t limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
    if (limit == UINT64_MAX) return true;
    uint64_t ready = atomic_load_explicit(&os_stats.ready, memory_order_relaxed);
    if (ready + ready_bytes <= limit) return true;
    atomic_fetch_add_explicit(&scavenge_stats.limit_hits, 1, memory_order_relaxed);
    size_t over = (size_t)(ready + ready_bytes - limit);
    size_t got = scavenge(over + (1u << 20), true);
    if (got < over) {
        scavenge_flush_page_caches();
        scavenge(over - got + (1u << 20), true);
    }
    if (!options.memlimit_hard) {
        scavenge_poke();
        return true;
    }
    ready = atomic_load_explicit(&os_stats.ready, memory_order_relaxed);
    return ready + ready_bytes <= limit;
}

/* ---- fork and exit -------------------------------------------------------- */

void scavenge_fork_child(void) {
    /* The thread did not survive the fork: start another when needed. */
    mutex_reinit(&scav.lock);
    mutex_reinit(&scav.run);
    /* fork_prepare's pause only (a pause taken in another thread does not
     * exist here); fork_child lifts it when the heap is repaired. */
    atomic_store(&claims_paused, 1);
    atomic_store(&scav.thread_state, THREAD_NONE);
    atomic_store(&scav.sleeping, SLEEP_NONE);
    atomic_store_explicit(&scavenge_start_wanted, 0, memory_order_relaxed);
}

void scavenge_shutdown(void) { atomic_store(&scav.exiting, 1); }

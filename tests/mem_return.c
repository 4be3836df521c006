/*
 * Memory return (issue: scavenger, memory limit, statistics), run under
 * LD_PRELOAD with the environment each test needs (tests/suites/35-memory.sh).
 *
 *   release_background  1 GiB of mixed objects allocated and freed: RSS must
 *                       fall below 10% of the peak within 5 s, and the
 *                       scavenger must stay within its CPU budget
 *   release_trim        the same, then malloc_trim(0): below 2% at once
 *   scavenge_off        GOMALLOC_SCAVENGE=off: nothing released, no thread
 *   scavenge_inline     GOMALLOC_SCAVENGE=inline: released by the allocating
 *                       thread, no scavenger thread
 *   memlimit_soft       RSS held near GOMALLOC_MEMLIMIT by a workload that
 *                       cycles through size classes and would pass it
 *   memlimit_hard       GOMALLOC_MEMLIMIT_HARD=1: ENOMEM at the limit,
 *                       usable again after frees
 *   fork_with_scavenger the scavenger restarts in a child on demand
 *   hugepages           which heap memory GOMALLOC_HUGEPAGES (1, 0, auto, 128MiB)
 *                       marks for huge pages
 *   hugepages_earlier   auto: the heap's first chunks marked and collapsed
 *                       when it passes 8 MiB
 *   hugepage_regions    what the scavenger releases of partly used 2 MiB
 *                       regions, with GOMALLOC_HUGEPAGES=1 and =0
 *   stats_identities    the identities after a multi-thread stress
 *
 * The curve lines (TLOG) give RSS over time for the closing notes.
 */
#include "testlib.h"

#include <dirent.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <malloc.h>
#include <pthread.h>

#include "gomalloc.h"

#define MiB (1024L * 1024)

static void *sym(const char *name) { return dlsym(RTLD_DEFAULT, name); }

/* Threads of this process, and of those the ones named gomalloc-scav,
 * without allocating (opendir would: an allocation may start the
 * scavenger). A thread names itself when it first runs, so a thread just
 * started may be counted by all_threads before scavenger_threads sees it. */
static int count_threads(int scavenger_only) {
    int dir = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
    if (dir < 0) return -1;
    char buf[4096];
    int n = 0;
    long got;
    while ((got = syscall(SYS_getdents64, dir, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            struct dirent64 *e = (struct dirent64 *)(buf + off);
            off += e->d_reclen;
            if (e->d_name[0] == '.') continue;
            if (!scavenger_only) {
                n++;
                continue;
            }
            char path[64], comm[32] = {0};
            snprintf(path, sizeof path, "/proc/self/task/%.16s/comm", e->d_name);
            int fd = open(path, O_RDONLY);
            if (fd < 0) continue;
            ssize_t k = read(fd, comm, sizeof comm - 1);
            close(fd);
            if (k > 0 && !strncmp(comm, "gomalloc-scav", 13)) n++;
        }
    }
    close(dir);
    return n;
}
static int scavenger_threads(void) { return count_threads(1); }
static int all_threads(void) { return count_threads(0); }

/* Allocate about `total` bytes of mixed objects (95% small, 5% large),
 * touching every byte; returns the count. */
static size_t fill_mixed(void **objs, size_t max, size_t total, uint64_t seed) {
    size_t n = 0, sum = 0;
    while (sum < total && n < max) {
        uint64_t r = tl_rand(&seed);
        size_t sz = r % 100 < 95 ? 16 + (r >> 20) % 1000 : 40000 + (r >> 20) % 200000;
        objs[n] = malloc(sz);
        if (!objs[n]) break;
        memset(objs[n], 1, sz);
        sum += sz;
        n++;
    }
    return n;
}

static void *objs[4000000];

/* RSS not counting the program's own bss (objs): touch objs first. */
static long baseline_kib(void) {
    memset(objs, 0, sizeof objs);
    return tl_rss_kib();
}

static int read_stats(struct gm_memstats *st) {
    void (*rd)(struct gm_memstats *) = (void (*)(struct gm_memstats *))sym("gm_read_memstats");
    CHECKR(rd != NULL, "gomalloc is not loaded");
    rd(st);
    return 1;
}

TEST(release_background) {
    size_t n = fill_mixed(objs, 4000000, 1L << 30, 1);
    long peak = tl_rss_kib();
    for (size_t i = 0; i < n; i++) free(objs[i]);
    double t0 = tl_now(), reached = -1;
    long last = 0;
    char curve[512] = "";
    for (int i = 1; i <= 50; i++) {
        usleep(100000);
        last = tl_rss_kib();
        if (i % 5 == 0) {
            char pt[48];
            snprintf(pt, sizeof pt, " %.1fs:%ldMiB", tl_now() - t0, last >> 10);
            strncat(curve, pt, sizeof curve - strlen(curve) - 1);
        }
        if (reached < 0 && last < peak / 10) reached = tl_now() - t0;
    }
    double elapsed = tl_now() - t0;
    TLOG("release_background: peak %ld MiB; after free%s; below 10%% after %.1f s", peak >> 10, curve, reached);
    CHECKF(reached >= 0 && reached <= 5.0, "RSS %ld KiB after 5 s, peak %ld KiB", last, peak);
    CHECK(scavenger_threads() == 1);
    struct gm_memstats st;
    if (!read_stats(&st)) return;
    /* budget: 1% of one CPU plus a 100 ms burst; generous: 3% plus 150 ms */
    double cpu = st.scavenger_thread_ns / 1e9;
    TLOG("release_background: scavenger CPU %.1f ms over %.1f s (%.2f%%), released %llu MiB", cpu * 1e3, elapsed,
         100 * cpu / elapsed, (unsigned long long)(st.scavenged_bytes >> 20));
    CHECKF(cpu <= 0.03 * elapsed + 0.15, "scavenger used %.3f s of CPU in %.1f s", cpu, elapsed);
}

TEST(release_trim) {
    size_t n = fill_mixed(objs, 4000000, 1L << 30, 2);
    long peak = tl_rss_kib();
    for (size_t i = 0; i < n; i++) free(objs[i]);
    double t0 = tl_now();
    int r = malloc_trim(0);
    double dt = tl_now() - t0;
    long after = tl_rss_kib();
    TLOG("release_trim: peak %ld MiB, after malloc_trim(0) %ld MiB (%.1f%%) in %.3f s", peak >> 10, after >> 10,
         100.0 * after / peak, dt);
    CHECK(r == 1);
    CHECKF(after < peak / 50, "RSS %ld KiB after trim, peak %ld KiB", after, peak);
    struct gm_memstats st;
    if (!read_stats(&st)) return;
    CHECKF(st.heap_idle - st.heap_released < 1 * MiB, "%llu bytes idle but not released",
           (unsigned long long)(st.heap_idle - st.heap_released));
    /* the released memory comes back on demand */
    n = fill_mixed(objs, 4000000, 64 * MiB, 3);
    for (size_t i = 0; i < n; i++) free(objs[i]);
    size_t (*rel)(void) = (size_t(*)(void))sym("gm_release_memory");
    CHECK(rel && rel() > 32 * MiB);
}

TEST(scavenge_off) {
    size_t n = fill_mixed(objs, 4000000, 256 * MiB, 4);
    for (size_t i = 0; i < n; i++) free(objs[i]);
    long after_free = tl_rss_kib();
    sleep(2);
    long later = tl_rss_kib();
    CHECK(scavenger_threads() == 0);
    CHECKF(later > after_free * 9 / 10, "RSS fell from %ld to %ld KiB with the scavenger off", after_free, later);
    CHECK(malloc_trim(0) == 1);
    CHECKF(tl_rss_kib() < later / 5, "malloc_trim released nothing: %ld KiB", tl_rss_kib());
}

TEST(scavenge_inline) {
    size_t n = fill_mixed(objs, 4000000, 512 * MiB, 5);
    long peak = tl_rss_kib();
    for (size_t i = 0; i < n; i++) free(objs[i]);
    /* keep allocating: the inline scavenger works on this thread */
    double t0 = tl_now();
    while (tl_now() - t0 < 4) {
        char *volatile p = malloc(1 << 20); /* volatile: the pair must not be optimised away */
        memset(p, 2, 4096);
        free(p);
        usleep(1000);
    }
    long after = tl_rss_kib();
    TLOG("scavenge_inline: peak %ld MiB, after 4 s of light allocation %ld MiB", peak >> 10, after >> 10);
    CHECK(scavenger_threads() == 0);
    CHECKF(after < peak / 4, "RSS %ld KiB, peak %ld KiB", after, peak);
}

/* Cycle through size classes: each round fills `round` bytes of one class,
 * frees every other span's worth of objects (holes of whole spans), then
 * allocates large objects that cannot use those holes, then frees it all. */
static long cycle_classes(size_t round) {
    static const size_t sizes[] = {48, 256, 1024, 2048, 112, 640}; /* one-page spans */
    long peak = 0;
    for (int r = 0; r < 6; r++) {
        size_t sz = sizes[r], per = 8192 / sz ? 8192 / sz : 1, n = round / sz;
        for (size_t i = 0; i < n; i++) {
            objs[i] = malloc(sz);
            memset(objs[i], 3, sz);
        }
        for (size_t i = 0; i < n; i++)
            if ((i / per) % 2) {
                free(objs[i]);
                objs[i] = NULL;
            }
        size_t nl = round / 3 / MiB;
        for (size_t k = 0; k < nl; k++) {
            objs[n + k] = malloc(MiB);
            memset(objs[n + k], 4, MiB);
        }
        long rss = tl_rss_kib();
        if (rss > peak) peak = rss;
        for (size_t i = 0; i < n + nl; i++) free(objs[i]);
    }
    return peak;
}

TEST(memlimit_soft) {
    /* The suite runs this with GOMALLOC_MEMLIMIT=160MiB and, as a control,
     * without a limit (MEMLIMIT_CONTROL=1): the control must pass the limit,
     * or this test would prove nothing. */
    long base = baseline_kib();
    long peak = cycle_classes(150 * MiB) - base;
    long limit_kib = 160 * 1024;
    if (getenv("MEMLIMIT_CONTROL")) {
        TLOG("memlimit_soft control (no limit): peak RSS %ld MiB above the program's own", peak >> 10);
        CHECKF(peak > limit_kib * 11 / 10, "without a limit the workload peaked at %ld KiB only", peak);
        return;
    }
    uint64_t (*get)(void) = (uint64_t(*)(void))sym("gm_get_memory_limit");
    CHECK(get && get() == 160ull * MiB);
    TLOG("memlimit_soft (GOMALLOC_MEMLIMIT=160MiB): peak RSS %ld MiB above the program's own", peak >> 10);
    CHECKF(peak <= limit_kib * 11 / 10, "peak RSS %ld KiB with a limit of %ld KiB", peak, limit_kib);
}

TEST(memlimit_hard) {
    /* GOMALLOC_MEMLIMIT=64MiB GOMALLOC_MEMLIMIT_HARD=1 */
    size_t n = 0;
    errno = 0;
    while (n < 1000) {
        objs[n] = malloc(MiB);
        if (!objs[n]) break;
        memset(objs[n], 5, MiB);
        n++;
    }
    CHECKF(n > 40 && n < 64, "%zu MiB allocated under a 64 MiB hard limit", n);
    CHECK(errno == ENOMEM);
    long rss = tl_rss_kib();
    CHECKF(rss < 72 * 1024, "RSS %ld KiB under a 64 MiB hard limit", rss);
    errno = 0;
    CHECK(malloc(100 * MiB) == NULL && errno == ENOMEM);
    CHECK(calloc(1, 80 * MiB) == NULL);
    /* small objects fail too once the limit is reached */
    size_t small = 0;
    void *prev = NULL;
    for (;;) {
        void **q = malloc(100);
        if (!q) break;
        *q = prev;
        prev = q;
        small++;
    }
    CHECK(errno == ENOMEM);
    while (prev) {
        void *next = *(void **)prev;
        free(prev);
        prev = next;
    }
    /* after frees, allocation works again */
    for (size_t i = 0; i < n / 2; i++) free(objs[i]);
    void *p = malloc(10 * MiB);
    CHECK(p != NULL);
    memset(p, 6, 10 * MiB);
    free(p);
    for (size_t i = n / 2; i < n; i++) free(objs[i]);
    CHECK((p = malloc(40 * MiB)) != NULL);
    free(p);
    TLOG("memlimit_hard: %zu MiB of 1 MiB blocks and %zu small objects fit under 64 MiB", n, small);
}

TEST(fork_with_scavenger) {
    size_t n = fill_mixed(objs, 4000000, 300 * MiB, 6);
    for (size_t i = 0; i < n; i++) free(objs[i]);
    usleep(300000);
    CHECK(scavenger_threads() == 1);
    n = fill_mixed(objs, 4000000, 200 * MiB, 7);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child has no scavenger thread until it needs one */
        int before = scavenger_threads();
        long peak = tl_rss_kib();
        for (size_t i = 0; i < n; i++) free(objs[i]);
        /* not started inside free (scavenge.h): by the next allocation */
        int after_frees = scavenger_threads();
        size_t m = fill_mixed(objs, 4000000, 200 * MiB, 8);
        for (size_t i = 0; i < m; i++) free(objs[i]);
        sleep(4);
        long after = tl_rss_kib();
        _exit(before == 0 && after_frees == 0 && scavenger_threads() == 1 && after < peak / 4 ? 0 : 1);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    for (size_t i = 0; i < n; i++) free(objs[i]);
}

/* The scavenger thread is never started inside free (scavenge.h: a free
 * may run under the C library's locks): a free that wants it works inline,
 * and the next allocation slow path starts it. A heap below
 * SCAVENGE_THREAD_HEAP (32 MiB) does not ask for it when it grows. */
TEST(thread_started_by_allocation) {
    void *volatile big = malloc(4 * MiB); /* too large for the large-span cache; freed later, after the peak has decayed */
    CHECK(big != NULL);
    size_t n = fill_mixed(objs, 4000000, 14 * MiB, 9);
    struct gm_memstats st;
    if (!read_stats(&st)) return;
    CHECKF(st.heap_sys < 32 * MiB, "heap %llu KiB: the test needs a heap below 32 MiB",
           (unsigned long long)(st.heap_sys >> 10));
    CHECK(all_threads() == 1); /* growing to about 20 MiB did not ask for it */
    for (size_t i = 0; i < n; i++) free(objs[i]);
    CHECK(all_threads() == 1);
    sleep(2);  /* the peak in use decays: the retained free pages are over the goal */
    free(big); /* a span dies: the scavenger is wanted (if the frees above did not want it already) */
    CHECK(all_threads() == 1);
    void *volatile q = malloc(24000); /* a class not used so far: the slow path */
    CHECK(q != NULL);
    CHECK(all_threads() == 2);
    /* and it is the scavenger, once it has named itself */
    int threads = 0;
    for (int i = 0; i < 200 && (threads = scavenger_threads()) == 0; i++) usleep(10000);
    CHECK(threads == 1);
    free(q);
}

/* The smaps entry of the mapping holding p: VmFlags has "hg" (madvise
 * MADV_HUGEPAGE) and AnonHugePages (KiB). False if not found. */
static int mapping_of(const void *p, int *hg, long *huge_kib) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512];
    int in = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) { /* a mapping's first line */
            if (in) break;
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (!in) continue;
        found = 1;
        if (!strncmp(line, "AnonHugePages:", 14)) *huge_kib = atol(line + 14);
        if (!strncmp(line, "VmFlags:", 8)) *hg = strstr(line, " hg") != NULL;
    }
    fclose(f);
    return found;
}

/* The system's THP mode (line of /sys/kernel/mm/transparent_hugepage/enabled
 * into thp, "" if none): false if it has none or never gives them, and then
 * gomalloc marks nothing whatever GOMALLOC_HUGEPAGES says. */
static int thp_usable(char thp[128]) {
    thp[0] = 0;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(thp, 128, f)) thp[0] = 0;
        fclose(f);
    }
    thp[strcspn(thp, "\n")] = 0;
    return thp[0] && !strstr(thp, "[never]");
}

/* GOMALLOC_HUGEPAGES marks heap memory for transparent huge pages: =1 all
 * of it, =0 none, auto (the default) what the heap grows by once it passes
 * 8 MiB mapped, and then what it had before (hugepages_earlier), =128MiB
 * the same past 128 MiB. A 1 MiB object allocated first lies in the heap's
 * first 4 MiB chunk (marked only with =1); a 64 MiB object then grows the
 * heap past 8 MiB but not past 128 MiB, and a second one past 128 MiB,
 * which marks the first one's memory too. */
TEST(hugepages) {
    const char *opt = getenv("GOMALLOC_HUGEPAGES");
    int all = opt && !strcmp(opt, "1"), none = opt && !strcmp(opt, "0"), from128 = opt && !strcmp(opt, "128MiB");
    CHECKF(all || none || from128 || !opt || !strcmp(opt, "auto"), "GOMALLOC_HUGEPAGES=%s: not a mode this test knows",
           opt);
    const char *name = opt ? opt : "(unset)";
    char thp[128];
    if (!thp_usable(thp)) all = 0, none = 1, from128 = 0; /* nothing is marked */
    char *small = malloc(1 * MiB);
    CHECK(small != NULL);
    memset(small, 5, 1 * MiB);
    int hg = -1;
    long huge = -1;
    CHECK(mapping_of(small, &hg, &huge));
    CHECKF(hg == all, "1 MiB object in a small heap: VmFlags hg %d with GOMALLOC_HUGEPAGES=%s", hg, name);
    size_t n = 64 * MiB;
    char *p = malloc(n);
    CHECK(p != NULL);
    memset(p, 7, n);
    CHECK(mapping_of(p + n / 2, &hg, &huge));
    CHECKF(hg == (!none && !from128), "first 64 MiB object: VmFlags hg %d with GOMALLOC_HUGEPAGES=%s", hg, name);
    char *q = malloc(n);
    CHECK(q != NULL);
    memset(q, 9, n);
    CHECK(mapping_of(q + n / 2, &hg, &huge));
    CHECKF(hg == !none, "second 64 MiB object: VmFlags hg %d with GOMALLOC_HUGEPAGES=%s", hg, name);
    /* passing the threshold marked what the heap had before as well */
    CHECK(mapping_of(p + n / 2, &hg, &huge));
    CHECKF(hg == !none, "first 64 MiB object, after: VmFlags hg %d with GOMALLOC_HUGEPAGES=%s", hg, name);
    TLOG("hugepages: GOMALLOC_HUGEPAGES=%s, system THP %s, AnonHugePages %ld KiB of a 64 MiB object", name, thp, huge);
    /* where the system allows them, the marked heap gets them */
    if (!none) CHECKF(huge > 0, "no huge pages: AnonHugePages %ld KiB", huge);
    free(q);
    free(p);
    free(small);
}

/* GOMALLOC_HUGEPAGES=auto: when the heap passes 8 MiB, the chunks it had
 * before are marked too, and their resident 2 MiB regions collapsed
 * into huge pages at once (MADV_COLLAPSE). 6 MiB of 1 KiB objects, touched,
 * lie in 4 KiB pages; a 64 MiB object (not touched) takes the heap past
 * 8 MiB; then the small objects' mapping is marked and holds huge pages. */
TEST(hugepages_earlier) {
    char thp[128];
    int usable = thp_usable(thp);
    enum { N = 6 * 1024 };
    static char *obj[N];
    for (int i = 0; i < N; i++) {
        obj[i] = malloc(1024);
        CHECK(obj[i] != NULL);
        memset(obj[i], 1, 1024);
    }
    char *probe = obj[N / 4];
    int hg = -1;
    long huge = -1;
    CHECK(mapping_of(probe, &hg, &huge));
    CHECKF(hg == 0 && huge == 0, "before: VmFlags hg %d, AnonHugePages %ld KiB", hg, huge);
    char *big = malloc(64 * MiB);
    CHECK(big != NULL);
    CHECK(mapping_of(probe, &hg, &huge));
    TLOG("hugepages_earlier: system THP %s; after the heap passed 8 MiB: VmFlags hg %d, AnonHugePages %ld KiB", thp,
         hg, huge);
    CHECKF(hg == usable, "after: VmFlags hg %d with THP %s", hg, thp);
    /* the first 4 MiB chunk is wholly in use: both its regions collapse */
    if (usable) CHECKF(huge >= 4096, "after: AnonHugePages %ld KiB: not the first chunk's 4 MiB", huge);
    for (int i = 0; i < N; i++) CHECK(obj[i][0] == 1 && obj[i][1023] == 1); /* contents survive the copy */
    free(big);
    for (int i = 0; i < N; i++) free(obj[i]);
}

/* What the scavenger releases by itself, region by region (2 MiB): a
 * helper thread allocates 128 MiB of 64 KiB objects, keeps one inside
 * every other region and frees the rest, then exits (its caches go back to
 * the heap). In a heap marked for huge pages (GOMALLOC_HUGEPAGES=1) the
 * background scavenger releases the wholly free regions and not one page of
 * a region with an object in use (khugepaged would fill such a region in
 * again: pagealloc.c, region_releasable); without it (=0) it releases the
 * freed pages of both kinds. gm_release_memory then releases every free
 * page in both. Residency by mincore. */
#define REGION (2L * MiB)
#define HR_OBJ (64L * 1024)
#define HR_N 2048
#define HR_REGIONS 4096
static char *hr_obj[HR_N];
static unsigned char hr_live[HR_N], hr_region_live[HR_REGIONS];
static uintptr_t hr_lo;

static void *hr_fill(void *arg) {
    (void)arg;
    hr_lo = UINTPTR_MAX;
    for (int i = 0; i < HR_N; i++) {
        hr_obj[i] = malloc(HR_OBJ);
        if (!hr_obj[i]) return "malloc failed";
        memset(hr_obj[i], 3, HR_OBJ);
        if ((uintptr_t)hr_obj[i] / REGION < hr_lo) hr_lo = (uintptr_t)hr_obj[i] / REGION;
    }
    for (int i = 0; i < HR_N; i++) {
        uintptr_t r0 = (uintptr_t)hr_obj[i] / REGION, r1 = ((uintptr_t)hr_obj[i] + HR_OBJ - 1) / REGION;
        if (r1 - hr_lo >= HR_REGIONS) return "objects spread over more than 8 GiB";
        if (r0 == r1 && r0 % 2 == 0 && !hr_region_live[r0 - hr_lo]) hr_region_live[r0 - hr_lo] = hr_live[i] = 1;
    }
    for (int i = 0; i < HR_N; i++)
        if (!hr_live[i]) free(hr_obj[i]);
    return NULL;
}

/* Bytes of the freed objects no longer resident: [0] in regions that hold
 * a live object, [1] in wholly free regions; total[] the same for all of
 * them. */
static void hr_released(long released[2], long total[2]) {
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec[HR_OBJ / 4096];
    released[0] = released[1] = total[0] = total[1] = 0;
    for (int i = 0; i < HR_N; i++) {
        if (hr_live[i]) continue;
        uintptr_t r0 = (uintptr_t)hr_obj[i] / REGION, r1 = ((uintptr_t)hr_obj[i] + HR_OBJ - 1) / REGION;
        int mixed = hr_region_live[r0 - hr_lo] || hr_region_live[r1 - hr_lo];
        total[!mixed] += HR_OBJ;
        if (mincore(hr_obj[i], HR_OBJ, vec) != 0) continue;
        for (long k = 0; k < HR_OBJ / page; k++)
            if (!(vec[k] & 1)) released[!mixed] += page;
    }
}

TEST(hugepage_regions) {
    const char *opt = getenv("GOMALLOC_HUGEPAGES");
    CHECKF(opt && (!strcmp(opt, "0") || !strcmp(opt, "1")), "run with GOMALLOC_HUGEPAGES=0 or =1 (is %s)",
           opt ? opt : "unset");
    char thp[128];
    int huge = !strcmp(opt, "1") && thp_usable(thp);
    size_t (*release)(void) = (size_t (*)(void))sym("gm_release_memory");
    CHECKF(release != NULL, "gomalloc is not loaded");
    pthread_t t;
    void *err = NULL;
    CHECK(pthread_create(&t, NULL, hr_fill, NULL) == 0);
    pthread_join(t, &err);
    CHECKF(err == NULL, "%s", (const char *)err);
    /* the background scavenger's goal decays to the memory in use in a few
     * seconds: wait until HeapReleased has not moved for a second */
    struct gm_memstats st;
    uint64_t last = 0;
    double t0 = tl_now(), still = t0;
    while (tl_now() - t0 < 15) {
        usleep(100000);
        if (!read_stats(&st)) return;
        if (st.heap_released != last) last = st.heap_released, still = tl_now();
        if (tl_now() - t0 > 3 && tl_now() - still > 1) break;
    }
    long rel[2], tot[2];
    hr_released(rel, tot);
    TLOG("hugepage_regions: GOMALLOC_HUGEPAGES=%s; after %.1f s the scavenger had released %ld of %ld MiB freed in "
         "regions with an object in use, %ld of %ld MiB in wholly free regions",
         opt ? opt : "(unset)", tl_now() - t0, rel[0] / MiB, tot[0] / MiB, rel[1] / MiB, tot[1] / MiB);
    CHECKF(tot[0] >= 32 * MiB && tot[1] >= 32 * MiB, "layout: %ld and %ld MiB freed", tot[0], tot[1]);
    CHECKF(rel[1] >= tot[1] / 10 * 9, "wholly free regions: %ld of %ld bytes released", rel[1], tot[1]);
    if (huge)
        CHECKF(rel[0] == 0, "huge pages: %ld bytes released in regions with an object in use", rel[0]);
    else
        CHECKF(rel[0] >= tot[0] / 2, "%ld of %ld bytes released in regions with an object in use", rel[0], tot[0]);
    release();
    hr_released(rel, tot);
    TLOG("hugepage_regions: after gm_release_memory %ld of %ld MiB, and %ld of %ld MiB", rel[0] / MiB, tot[0] / MiB,
         rel[1] / MiB, tot[1] / MiB);
    CHECKF(rel[0] >= tot[0] / 20 * 19 && rel[1] >= tot[1] / 20 * 19,
           "gm_release_memory: %ld of %ld and %ld of %ld bytes released", rel[0], tot[0], rel[1], tot[1]);
    for (int i = 0; i < HR_N; i++)
        if (hr_live[i]) free(hr_obj[i]);
}

static void *stress(void *arg) {
    uint64_t seed = (uintptr_t)arg;
    void *live[512] = {0};
    for (int i = 0; i < 300000; i++) {
        uint64_t r = tl_rand(&seed);
        int k = (int)(r % 512);
        free(live[k]);
        live[k] = malloc(r % 100 < 98 ? (r >> 16) % 2000 : (r >> 16) % 300000);
    }
    for (int k = 0; k < 512; k += 2) free(live[k]); /* leave half alive */
    return NULL;
}

TEST(stats_identities) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, stress, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    struct gm_memstats st;
    if (!read_stats(&st)) return;
    CHECKF(st.heap_sys == st.heap_inuse + st.heap_idle, "HeapSys %llu != %llu + %llu",
           (unsigned long long)st.heap_sys, (unsigned long long)st.heap_inuse, (unsigned long long)st.heap_idle);
    CHECKF(st.sys == st.heap_sys + st.mspan_sys + st.mcache_sys + st.other_sys, "Sys breakdown");
    CHECKF(st.sys == st.os_ready + st.os_prepared, "Sys %llu != Ready %llu + Prepared %llu",
           (unsigned long long)st.sys, (unsigned long long)st.os_ready, (unsigned long long)st.os_prepared);
    CHECKF(st.heap_released == st.os_prepared, "HeapReleased %llu != Prepared %llu",
           (unsigned long long)st.heap_released, (unsigned long long)st.os_prepared);
    CHECK(st.heap_objects == st.mallocs - st.frees);
    CHECK(st.heap_alloc <= st.heap_inuse);
    uint64_t objects = 0, bytes = 0;
    for (unsigned i = 1; i < st.num_size_classes; i++) {
        objects += st.by_size[i].mallocs - st.by_size[i].frees;
        bytes += (st.by_size[i].mallocs - st.by_size[i].frees) * st.by_size[i].size;
    }
    objects += st.large_mallocs - st.large_frees;
    bytes += st.large_alloc_bytes;
    CHECK(objects == st.heap_objects && bytes == st.heap_alloc);
    /* 4 threads left 256 objects each alive (plus the program's own) */
    CHECKF(st.heap_objects >= 1024 && st.heap_objects < 1024 + 2000, "HeapObjects %llu",
           (unsigned long long)st.heap_objects);
}

TEST_MAIN()

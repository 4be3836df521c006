/*
 * stats.c: heap statistics, Go's runtime.MemStats for a C heap.
 *
 * Owns: gm_read_memstats, the text and JSON reports, GOMALLOC_STATS at
 * exit, and the identities the numbers obey.
 * Go counterpart: mstats.go (ReadMemStats).
 *
 * Where the numbers come from:
 *  - object counts: per-thread counters (mcache.c), written by their thread
 *    without atomics and summed here, plus the counters of exited threads.
 *    Objects in a thread's current allocation window are counted when the
 *    window is loaded; the reader subtracts the slots still free in each
 *    window, so at quiescence the counts are exact.
 *  - pages: the page allocator and mheap counters (heap lock).
 *  - metadata: the purpose counters of fixalloc.h; address space per state
 *    from os_linux.c.
 *
 * Identities (checked by stats_check_identities and the tests):
 *   HeapSys  = HeapInuse + HeapIdle
 *   HeapIdle >= HeapReleased
 *   Sys      = HeapSys + MSpanSys + MCacheSys + OtherSys
 *   Sys      = bytes Ready + bytes Prepared        (everything mapped)
 *   HeapReleased = bytes Prepared                  (only released heap pages)
 *   HeapObjects  = Mallocs - Frees
 *   HeapAlloc <= HeapInuse
 * Reading takes the heap lock and the cache-list lock briefly, and holds
 * off the scavenger's runs (so the scavenger alone never makes a snapshot
 * inexact); it does not stop other threads, so a snapshot taken while they
 * allocate is close, not exact. heap_check (check.c) reads with every lock
 * held, the run lock included (memstats_read(st, true)).
 */
#include "stats.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fixalloc.h"
#include "malloc.h"
#include "mcache.h"
#include "mheap.h"
#include "options.h"
#include "os.h"
#include "print.h"
#include "scavenge.h"

EXPORT void gm_read_memstats(struct gm_memstats *st) {
    memset(st, 0, sizeof *st);
    if (!malloc_init()) return; /* start-up refused: nothing to count yet */
    memstats_read(st, false);
}

void memstats_read(struct gm_memstats *st, bool locked) {
    memset(st, 0, sizeof *st);
    /* No scavenging run in flight while the heap and OS numbers are read. */
    if (!locked) scavenge_run_lock();
    struct class_stats cls[NUM_SIZE_CLASSES];
    uint64_t large[5];
    uint32_t nthreads;
    mcache_sum_stats(cls, large, &nthreads, locked);

    st->num_size_classes = NUM_SIZE_CLASSES;
    for (unsigned i = 1; i < NUM_SIZE_CLASSES; i++) {
        uint64_t size = class_to_size[i];
        uint64_t m = cls[i].nmalloc, f = cls[i].nfree;
        if (f > m) f = m; /* a racing snapshot */
        st->by_size[i].size = (uint32_t)size;
        st->by_size[i].mallocs = m;
        st->by_size[i].frees = f;
        st->mallocs += m;
        st->frees += f;
        st->total_alloc += m * size;
        st->heap_alloc += (m - f) * size;
    }
    st->by_size[0].mallocs = large[0];
    st->by_size[0].frees = large[1];
    st->large_mallocs = large[0];
    st->large_frees = large[1];
    st->large_alloc_bytes = large[2] - large[3];
    st->mallocs += large[0];
    st->frees += large[1];
    st->total_alloc += large[2];
    st->heap_alloc += large[2] - large[3];
    st->heap_objects = st->mallocs - st->frees;
    st->alloc = st->heap_alloc;
    st->num_threads = nthreads;

    /* The page counts and the OS state counters are read together under
     * the heap lock, and no scavenger run is between its claim and its
     * release (the run lock: its pages would be neither free nor in use to
     * the page allocator, and may already be Prepared to the OS): a
     * snapshot of a heap nobody else allocates from obeys the identities
     * exactly, even with the background scavenger at work. */
    if (!locked) lock(&mheap_.lock);
    uint64_t free_pages = mheap_.pages.free_pages + mheap_.pages.claimed_pages;
    uint64_t scav_pages = mheap_.pages.scav_pages;
    st->heap_sys = mheap_.heap_sys;
    st->os_reserved = atomic_load_explicit(&os_stats.reserved, memory_order_relaxed);
    st->os_prepared = atomic_load_explicit(&os_stats.prepared, memory_order_relaxed);
    st->os_ready = atomic_load_explicit(&os_stats.ready, memory_order_relaxed);
    if (!locked) unlock(&mheap_.lock);
    free_pages += atomic_load_explicit(&mheap_.pagecache_free, memory_order_relaxed) + large[4];
    scav_pages += atomic_load_explicit(&mheap_.pagecache_scav, memory_order_relaxed);
    st->heap_inuse = (atomic_load_explicit(&mheap_.pages_inuse, memory_order_relaxed) - large[4]) * PAGE_SIZE;
    st->heap_idle = free_pages * PAGE_SIZE; /* free in the page allocator, page caches, large-span caches */
    st->heap_released = scav_pages * PAGE_SIZE;

    for (unsigned k = 0; k < SPAN_RECORD_KINDS; k++)
        st->mspan_inuse += locked ? mheap_.spanalloc[k].inuse : fixalloc_inuse(&mheap_.spanalloc[k]);
    st->mspan_sys = sysstat_load(&metastats.mspan);
    st->mcache_inuse = locked ? mheap_.cachealloc.inuse : fixalloc_inuse(&mheap_.cachealloc);
    st->mcache_sys = sysstat_load(&metastats.mcache);
    st->other_sys = sysstat_load(&metastats.arena) + sysstat_load(&metastats.pagealloc) +
                    sysstat_load(&metastats.other);
    st->sys = st->heap_sys + st->mspan_sys + st->mcache_sys + st->other_sys;

    st->scavenged_bytes = atomic_load_explicit(&scavenge_stats.released_bytes, memory_order_relaxed);
    st->scavenge_cpu_ns = atomic_load_explicit(&scavenge_stats.work_ns, memory_order_relaxed);
    st->scavenger_thread_ns = atomic_load_explicit(&scavenge_stats.background_ns, memory_order_relaxed);
    st->memory_limit = atomic_load_explicit(&memory_limit, memory_order_relaxed);
    if (!locked) scavenge_run_unlock();
}

int stats_check_identities(const struct gm_memstats *st, char *why, size_t cap) {
#define IDENTITY(cond, ...)                                                                                 \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            format_buf(why, cap, __VA_ARGS__);                                                               \
            return -1;                                                                                       \
        }                                                                                                    \
    } while (0)
    IDENTITY(st->heap_sys == st->heap_inuse + st->heap_idle, "HeapSys %llu != HeapInuse %llu + HeapIdle %llu",
             (unsigned long long)st->heap_sys, (unsigned long long)st->heap_inuse,
             (unsigned long long)st->heap_idle);
    IDENTITY(st->heap_idle >= st->heap_released, "HeapIdle %llu < HeapReleased %llu",
             (unsigned long long)st->heap_idle, (unsigned long long)st->heap_released);
    IDENTITY(st->sys == st->os_ready + st->os_prepared, "Sys %llu != Ready %llu + Prepared %llu",
             (unsigned long long)st->sys, (unsigned long long)st->os_ready, (unsigned long long)st->os_prepared);
    IDENTITY(st->heap_released == st->os_prepared, "HeapReleased %llu != Prepared %llu",
             (unsigned long long)st->heap_released, (unsigned long long)st->os_prepared);
    IDENTITY(st->heap_objects == st->mallocs - st->frees, "HeapObjects %llu != Mallocs %llu - Frees %llu",
             (unsigned long long)st->heap_objects, (unsigned long long)st->mallocs, (unsigned long long)st->frees);
    IDENTITY(st->heap_alloc <= st->heap_inuse, "HeapAlloc %llu > HeapInuse %llu",
             (unsigned long long)st->heap_alloc, (unsigned long long)st->heap_inuse);
#undef IDENTITY
    return 0;
}

static void stat_row(struct writer *w, const char *name, uint64_t v, const char *note) {
    char human[32];
    struct writer h;
    writer_init(&h, human, sizeof human, -1);
    writer_bytes(&h, v);
    writer_printf(w, "gomalloc:   %-14s %14llu  %-11s %s\n", name, (unsigned long long)v, human, note);
}

static void print_text(struct writer *w, const struct gm_memstats *st) {
#define ROW(name, v, note) stat_row(w, name, v, note)
    writer_printf(w, "gomalloc: memory statistics (%s; Go runtime.MemStats names)\n", gm_version());
    ROW("HeapAlloc", st->heap_alloc, "bytes of live objects");
    ROW("TotalAlloc", st->total_alloc, "bytes ever allocated");
    ROW("Sys", st->sys, "bytes mapped from the OS");
    ROW("HeapSys", st->heap_sys, "= HeapInuse + HeapIdle");
    ROW("HeapInuse", st->heap_inuse, "pages in spans with objects");
    ROW("HeapIdle", st->heap_idle, "free pages");
    ROW("HeapReleased", st->heap_released, "free pages returned to the OS");
    ROW("MSpanSys", st->mspan_sys, "span records");
    ROW("MCacheSys", st->mcache_sys, "thread caches");
    ROW("OtherSys", st->other_sys, "arena index, page summaries, other metadata");
    ROW("Prepared", st->os_prepared, "address space released (no memory behind it)");
    ROW("Ready", st->os_ready, "address space usable");
    ROW("Reserved", st->os_reserved, "address space reserved, not mapped");
#undef ROW
    writer_printf(w, "gomalloc:   scavenger released %llu KiB in %llu ms of CPU\n",
                  (unsigned long long)(st->scavenged_bytes >> 10), (unsigned long long)(st->scavenge_cpu_ns / 1000000));
    writer_printf(w, "gomalloc:   Mallocs %llu, Frees %llu, HeapObjects %llu, large %llu/%llu, threads %u\n",
                  (unsigned long long)st->mallocs, (unsigned long long)st->frees,
                  (unsigned long long)st->heap_objects, (unsigned long long)st->large_mallocs,
                  (unsigned long long)st->large_frees, st->num_threads);
    writer_printf(w, "gomalloc:   %5s %7s %12s %12s %12s\n", "class", "size", "mallocs", "frees", "live bytes");
    for (unsigned i = 1; i < st->num_size_classes; i++) {
        const struct gm_size_class_stats *c = &st->by_size[i];
        if (!c->mallocs) continue;
        writer_printf(w, "gomalloc:   %5u %7u %12llu %12llu %12llu\n", i, c->size, (unsigned long long)c->mallocs,
                      (unsigned long long)c->frees, (unsigned long long)((c->mallocs - c->frees) * c->size));
    }
}

static void print_json(struct writer *w, const struct gm_memstats *st) {
#define F(name, v) writer_printf(w, "  \"%s\": %llu,\n", name, (unsigned long long)(v))
    writer_puts(w, "{\n");
    writer_printf(w, "  \"version\": \"%s\",\n", gm_version());
    F("Alloc", st->alloc);
    F("TotalAlloc", st->total_alloc);
    F("Sys", st->sys);
    F("Mallocs", st->mallocs);
    F("Frees", st->frees);
    F("HeapAlloc", st->heap_alloc);
    F("HeapSys", st->heap_sys);
    F("HeapIdle", st->heap_idle);
    F("HeapInuse", st->heap_inuse);
    F("HeapReleased", st->heap_released);
    F("HeapObjects", st->heap_objects);
    F("MSpanInuse", st->mspan_inuse);
    F("MSpanSys", st->mspan_sys);
    F("MCacheInuse", st->mcache_inuse);
    F("MCacheSys", st->mcache_sys);
    F("OtherSys", st->other_sys);
    F("Reserved", st->os_reserved);
    F("Prepared", st->os_prepared);
    F("Ready", st->os_ready);
    F("Scavenged", st->scavenged_bytes);
    F("ScavengeCPUNanos", st->scavenge_cpu_ns);
    F("MemoryLimit", st->memory_limit);
    F("LargeMallocs", st->large_mallocs);
    F("LargeFrees", st->large_frees);
    F("Threads", st->num_threads);
#undef F
    writer_puts(w, "  \"BySize\": [\n");
    for (unsigned i = 1; i < st->num_size_classes; i++) {
        const struct gm_size_class_stats *c = &st->by_size[i];
        writer_printf(w, "    {\"Size\": %u, \"Mallocs\": %llu, \"Frees\": %llu}%s\n", c->size,
                      (unsigned long long)c->mallocs, (unsigned long long)c->frees,
                      i + 1 < st->num_size_classes ? "," : "");
    }
    writer_puts(w, "  ]\n}\n");
}

EXPORT void gm_print_stats(int fd, int json) {
    struct gm_memstats st;
    gm_read_memstats(&st);
    char buf[1024];
    struct writer w;
    writer_init(&w, buf, sizeof buf, fd);
    if (json)
        print_json(&w, &st);
    else
        print_text(&w, &st);
    writer_flush(&w);
}

void stats_at_exit(void) {
    if (options.stats == STATS_TEXT) {
        gm_print_stats(2, 0);
    } else if (options.stats == STATS_JSON) {
        int fd = 2;
        if (options.stats_file) fd = open(options.stats_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            print_err("gomalloc: cannot open GOMALLOC_STATS file %s\n", options.stats_file);
            return;
        }
        gm_print_stats(fd, 1);
        if (fd != 2) close(fd);
    }
}

/*
 * gomalloc: the Go runtime's memory allocator as a C malloc.
 *
 * This is the public API. Everything here has the prefix gm_. The library
 * also exports the standard names (malloc, free, operator new, ...) from
 * src/override.c, so most programs never include this header: they link
 * with -lgomalloc or run under LD_PRELOAD=libgomalloc.so.
 *
 * Guarantees shared by every allocation function:
 *   - results are 16-byte aligned for sizes >= 16 and 8-byte aligned below;
 *   - size 0 returns a unique pointer that can be freed;
 *   - failure returns NULL with errno = ENOMEM (EINVAL for a bad alignment);
 *   - gm_free and friends preserve errno.
 */
#ifndef GOMALLOC_H
#define GOMALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GM_EXPORT __attribute__((visibility("default")))
#define GM_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#define GM_ALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define GM_ALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#else
#define GM_EXPORT
#define GM_MALLOC_ATTR
#define GM_ALLOC_SIZE(n)
#define GM_ALLOC_SIZE2(n, m)
#endif

#define GM_VERSION_MAJOR 0
#define GM_VERSION_MINOR 1
#define GM_VERSION_PATCH 0

/* "gomalloc 0.1.0" plus build flavour. */
GM_EXPORT const char *gm_version(void);

/* ---- Standard allocation --------------------------------------------- */

GM_EXPORT void *gm_malloc(size_t size) GM_MALLOC_ATTR GM_ALLOC_SIZE(1);
GM_EXPORT void *gm_calloc(size_t count, size_t size) GM_MALLOC_ATTR GM_ALLOC_SIZE2(1, 2);
GM_EXPORT void *gm_realloc(void *ptr, size_t size) GM_ALLOC_SIZE(2);
GM_EXPORT void *gm_reallocarray(void *ptr, size_t count, size_t size) GM_ALLOC_SIZE2(2, 3);
GM_EXPORT void gm_free(void *ptr);

/* C23 sized free: size must be the size passed to malloc/calloc/realloc. */
GM_EXPORT void gm_free_sized(void *ptr, size_t size);
/* C23: for memory from gm_aligned_alloc with the same alignment and size. */
GM_EXPORT void gm_free_aligned_sized(void *ptr, size_t alignment, size_t size);

/* ---- Aligned allocation ---------------------------------------------- */

/* alignment: a power of two (any size is accepted, C17 DR 460). */
GM_EXPORT void *gm_aligned_alloc(size_t alignment, size_t size) GM_MALLOC_ATTR GM_ALLOC_SIZE(2);
/* alignment: a power of two and a multiple of sizeof(void*); returns 0,
 * EINVAL or ENOMEM and leaves *out untouched on failure. */
GM_EXPORT int gm_posix_memalign(void **out, size_t alignment, size_t size);
GM_EXPORT void *gm_memalign(size_t alignment, size_t size) GM_MALLOC_ATTR GM_ALLOC_SIZE(2);

/* ---- Sizes ----------------------------------------------------------- */

/* Bytes usable at ptr (the object's size class); 0 for NULL. */
GM_EXPORT size_t gm_usable_size(const void *ptr);
/* The usable size gm_malloc(size) would give (like jemalloc's nallocx). */
GM_EXPORT size_t gm_good_size(size_t size);

/* ---- Memory return and limits ---------------------------------------- */

/* Return every free page to the OS now, including the pages cached by
 * threads (Go's debug.FreeOSMemory). Returns the number of bytes released. */
GM_EXPORT size_t gm_release_memory(void);

/* Soft memory limit (Go's debug.SetMemoryLimit / GOMEMLIMIT) on the memory
 * gomalloc keeps resident (Ready), metadata included. Near it the scavenger
 * works harder and caches are flushed; with GOMALLOC_MEMLIMIT_HARD=1 an
 * allocation that would pass it fails with ENOMEM. GM_NO_LIMIT (or 0)
 * removes the limit. Returns the previous limit. */
#define GM_NO_LIMIT UINT64_MAX
GM_EXPORT uint64_t gm_set_memory_limit(uint64_t bytes);
GM_EXPORT uint64_t gm_get_memory_limit(void);

/* ---- Statistics (Go's runtime.MemStats) ------------------------------ */

#define GM_NUM_SIZE_CLASSES 68

struct gm_size_class_stats {
    uint32_t size;      /* object size of the class (0 for the large class) */
    uint64_t mallocs;   /* objects allocated in this class, cumulative */
    uint64_t frees;     /* objects freed in this class, cumulative */
};

struct gm_memstats {
    /* General (Go: Alloc, TotalAlloc, Sys, Mallocs, Frees). */
    uint64_t alloc;          /* bytes of live objects (= heap_alloc) */
    uint64_t total_alloc;    /* bytes ever allocated */
    uint64_t sys;            /* bytes obtained from the OS (mapped, all kinds) */
    uint64_t mallocs;        /* objects ever allocated */
    uint64_t frees;          /* objects ever freed */

    /* Heap (Go: HeapAlloc ... HeapObjects). */
    uint64_t heap_alloc;     /* bytes of live objects (size-class rounded) */
    uint64_t heap_sys;       /* heap_inuse + heap_idle */
    uint64_t heap_idle;      /* free pages, resident or released */
    uint64_t heap_inuse;     /* pages in spans that hold objects */
    uint64_t heap_released;  /* free pages returned to the OS */
    uint64_t heap_objects;   /* live objects */

    /* Metadata (Go: MSpanInuse/MSpanSys, MCacheInuse/MCacheSys, OtherSys). */
    uint64_t mspan_inuse, mspan_sys;
    uint64_t mcache_inuse, mcache_sys;
    uint64_t other_sys;      /* arena index, page-allocator summaries, other metadata */

    /* Address space by Go state (os_linux.c). */
    uint64_t os_reserved;    /* Reserved: owned, not accessible */
    uint64_t os_prepared;    /* Prepared: mapped but not backed (released) */
    uint64_t os_ready;       /* Ready: usable memory */

    /* Large objects (> 32 KiB). */
    uint64_t large_mallocs, large_frees, large_alloc_bytes;

    /* Scavenger (memory returned to the OS). */
    uint64_t scavenged_bytes;     /* total bytes ever released */
    uint64_t scavenge_cpu_ns;     /* CPU time spent releasing, all threads */
    uint64_t scavenger_thread_ns; /* ... of which on the background thread */
    uint64_t memory_limit;        /* GM_NO_LIMIT if none */

    uint32_t num_threads;    /* live per-thread caches */
    uint32_t num_size_classes;
    struct gm_size_class_stats by_size[GM_NUM_SIZE_CLASSES];
};

/* Fill *stats. Cheap enough to call often; consistent within a snapshot. */
GM_EXPORT void gm_read_memstats(struct gm_memstats *stats);
/* Print a readable table (json != 0: JSON) to the file descriptor fd. */
GM_EXPORT void gm_print_stats(int fd, int json);

/* ---- Debugging --------------------------------------------------------- */

/* Check the consistency of the whole heap: page-allocator bitmaps and every
 * level of summaries against a recomputation, page caches, mcentral lists,
 * and with GM_CHECK_QUIESCENT also every page, span, object bitmap and
 * thread cache, and the statistics against the objects actually live.
 * Without the flag it may be called at any time (it takes every allocator
 * lock, so other threads' slow paths wait); with it, no other thread may be
 * inside an allocation function during the call. Returns 0, or -1 after
 * printing the first broken invariant on stderr. Costs a walk over the heap
 * metadata (milliseconds for a heap of hundreds of MiB). */
#define GM_CHECK_QUIESCENT 1
GM_EXPORT int gm_check_heap(int flags);

#ifdef __cplusplus
}
#endif

#endif /* GOMALLOC_H */

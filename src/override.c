/*
 * override.c: the standard allocation symbols.
 *
 * Owns: malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc, malloc_usable_size, free_sized,
 * free_aligned_sized (C23), the glibc extras (malloc_trim, malloc_stats,
 * mallinfo, mallinfo2, mallopt) and glibc's internal __libc_* names, so that
 * a static link never pulls glibc's malloc.o. The C++ operators are in
 * new.cc. Everything here is a thin wrapper over malloc.c; malloc and free
 * inline the fast paths of malloc.h rather than calling gm_malloc.
 * Go counterpart: none.
 *
 * Visibility: the library is built with -fvisibility=hidden; only these
 * names and the gm_ API are exported (src/exports.map), so LD_PRELOAD or a
 * link with -lgomalloc interposes them for the whole process.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "gomalloc.h"
#include "malloc.h"
#include "os.h"

/* Declared by newer C libraries only (C23), and glibc's internal names. */
void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t align, size_t size);
void *__libc_malloc(size_t size);
void __libc_free(void *ptr);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *ptr, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **out, size_t align, size_t size);

EXPORT void *malloc(size_t size) { return malloc_inline(size); }
EXPORT void free(void *ptr) { free_inline(ptr); }
EXPORT void *calloc(size_t count, size_t size) { return gm_calloc(count, size); }
EXPORT void *realloc(void *ptr, size_t size) { return gm_realloc(ptr, size); }
EXPORT void *reallocarray(void *ptr, size_t count, size_t size) { return gm_reallocarray(ptr, count, size); }
EXPORT int posix_memalign(void **out, size_t align, size_t size) { return gm_posix_memalign(out, align, size); }
EXPORT void *aligned_alloc(size_t align, size_t size) { return gm_aligned_alloc(align, size); }
EXPORT void *memalign(size_t align, size_t size) { return gm_memalign(align, size); }
EXPORT size_t malloc_usable_size(void *ptr) { return gm_usable_size(ptr); }
EXPORT void free_sized(void *ptr, size_t size) { gm_free_sized(ptr, size); }
EXPORT void free_aligned_sized(void *ptr, size_t align, size_t size) { gm_free_aligned_sized(ptr, align, size); }

static size_t os_page(void) {
    malloc_init();
    return phys_page_size;
}

EXPORT void *valloc(size_t size) { return gm_memalign(os_page(), size); }

EXPORT void *pvalloc(size_t size) {
    size_t page = os_page();
    if (size > SIZE_MAX - page) return malloc_failed(1, size);
    return gm_memalign(page, round_up(size ? size : 1, page));
}

/* ---- glibc extras ------------------------------------------------------ */

/* Returns 1 if memory was released (glibc's contract); pad is ignored:
 * every free page goes back. */
EXPORT int malloc_trim(size_t pad) {
    (void)pad;
    return gm_release_memory() > 0;
}

EXPORT void malloc_stats(void) { gm_print_stats(2, 0); }

EXPORT int mallopt(int param, int value) {
    /* glibc's tuning knobs (arenas, trim and mmap thresholds) have no
     * meaning here; accept them so programs that set them keep working. */
    (void)param;
    (void)value;
    return 1;
}

EXPORT struct mallinfo2 mallinfo2(void) {
    struct gm_memstats st;
    gm_read_memstats(&st);
    struct mallinfo2 mi = {0};
    mi.arena = st.heap_sys;                          /* heap obtained from the OS */
    mi.ordblks = 0;                                  /* no free-chunk lists */
    mi.hblks = st.large_mallocs - st.large_frees;    /* large objects */
    mi.hblkhd = st.large_alloc_bytes;                /* bytes in large objects */
    mi.uordblks = st.heap_alloc;                     /* bytes in live objects */
    mi.fordblks = st.heap_sys - st.heap_alloc;       /* the rest of the heap */
    mi.keepcost = st.heap_idle - st.heap_released;   /* free, still resident */
    return mi;
}

EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = (int)m2.arena;
    mi.hblks = (int)m2.hblks;
    mi.hblkhd = (int)m2.hblkhd;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.keepcost = (int)m2.keepcost;
    return mi;
}

/* ---- glibc internal names ---------------------------------------------- */

EXPORT void *__libc_malloc(size_t size) { return malloc_inline(size); }
EXPORT void __libc_free(void *ptr) { free_inline(ptr); }
EXPORT void *__libc_calloc(size_t count, size_t size) { return gm_calloc(count, size); }
EXPORT void *__libc_realloc(void *ptr, size_t size) { return gm_realloc(ptr, size); }
EXPORT void *__libc_memalign(size_t align, size_t size) { return gm_memalign(align, size); }
EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
EXPORT int __posix_memalign(void **out, size_t align, size_t size) { return gm_posix_memalign(out, align, size); }

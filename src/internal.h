/*
 * internal.h: constants, compiler helpers and type names shared by every
 * component. Each component's own header (os.h, fixalloc.h, arena.h,
 * pagealloc.h, mheap.h, mspan.h, mcentral.h, mcache.h, malloc.h, stats.h,
 * options.h, print.h, lock.h) declares what that file owns.
 *
 * Units (as in Go): a page is 8 KiB of our own (not the OS page); a span
 * is 1..N contiguous pages; a chunk is 512 pages (4 MiB), the unit of the
 * page allocator's bitmaps and of heap growth; an arena is 64 MiB of
 * address space with its own metadata record.
 */
#ifndef GOMALLOC_INTERNAL_H
#define GOMALLOC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sizeclasses.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define NOINLINE __attribute__((noinline))
#define COLD __attribute__((cold, noinline))
#define CACHE_LINE 64
#define EXPORT __attribute__((visibility("default")))
/* Our own globals, declared in our headers: -fvisibility=hidden covers
 * definitions only, and without this an extern declaration is reached
 * through the GOT (one more load on the fast paths). */
#define HIDDEN __attribute__((visibility("hidden")))

/* Address space the heap may use: x86-64 user space is 47 bits (4-level
 * paging; the kernel never returns higher addresses without a high hint),
 * aarch64 user space 48 bits. Pointers above this are never ours. */
#if defined(__x86_64__)
#define HEAP_ADDR_BITS 47
#else
#define HEAP_ADDR_BITS 48
#endif

/* Arenas (Go: heapArenaBytes, logHeapArenaBytes). */
#define ARENA_SHIFT 26
#define ARENA_BYTES ((uintptr_t)1 << ARENA_SHIFT)
#define PAGES_PER_ARENA (ARENA_BYTES / PAGE_SIZE)
#define ARENA_INDEX_BITS (HEAP_ADDR_BITS - ARENA_SHIFT)
#define ARENA_INDEX_LEN ((uintptr_t)1 << ARENA_INDEX_BITS)

/* Page-allocator chunks (Go: pallocChunkPages, pallocChunkBytes). */
#define CHUNK_PAGES 512
#define CHUNK_SHIFT 22
#define CHUNK_BYTES ((uintptr_t)1 << CHUNK_SHIFT)
#define CHUNKS_PER_ARENA (ARENA_BYTES / CHUNK_BYTES)

/* Span classes: size class << 1 | noscan (Go's spanClass). Plain malloc
 * memory is always noscan; the scan half is kept for the GC mode. */
#define NUM_SPAN_CLASSES (NUM_SIZE_CLASSES * 2)
static inline uint8_t make_spanclass(unsigned sizeclass, unsigned noscan) {
    return (uint8_t)(sizeclass << 1 | noscan);
}
static inline unsigned spanclass_sizeclass(uint8_t spc) { return spc >> 1; }

/* Per-thread page cache eligibility (Go: npages < pageCachePages/4). */
#define PAGE_CACHE_PAGES 64
#define PAGE_CACHE_MAX_ALLOC (PAGE_CACHE_PAGES / 4)

/* Per-thread large-span cache (mcache.c): spans of up to 512 KiB, at most
 * 1 MiB per thread. */
#define LARGE_CACHE_MAX_PAGES 64
#define LARGE_CACHE_LIMIT_PAGES 128

typedef struct mspan mspan;
typedef struct mcache mcache;
typedef struct mcentral mcentral;
typedef struct heap_arena heap_arena;

/* The calling thread's thread pointer (x86-64: %fs:0, the TCB's self
 * pointer; aarch64: tpidr_el0): one instruction, distinct for every live
 * thread, never 0 or 1. */
static ALWAYS_INLINE uintptr_t thread_id(void) {
#if defined(__has_builtin) && __has_builtin(__builtin_thread_pointer) && defined(__GNUC__) && !defined(__clang__)
    return (uintptr_t)__builtin_thread_pointer();
#elif defined(__x86_64__)
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    return tp;
#elif defined(__aarch64__)
    uintptr_t tp;
    __asm__("mrs %0, tpidr_el0" : "=r"(tp));
    return tp;
#else
#error "thread_id: unsupported architecture"
#endif
}

static inline uintptr_t round_up(uintptr_t x, uintptr_t align) { return (x + align - 1) & ~(align - 1); }
static inline uintptr_t round_down(uintptr_t x, uintptr_t align) { return x & ~(align - 1); }

#ifdef GM_DEBUG
#define DEBUG_CHECKS 1
#else
#define DEBUG_CHECKS 0
#endif

#endif /* GOMALLOC_INTERNAL_H */

/*
 * os.h: address space and its four states (the interface of os_linux.c).
 *
 * Go counterpart: runtime/mem.go. Any range of address space is in one of
 * four states:
 *
 *   None      not ours.
 *   Reserved  ours, but any access faults; no memory behind it.
 *   Prepared  ours, should have no physical memory behind it, contents
 *             undefined; cheap to make Ready (on Linux: nothing to do,
 *             unless GOMALLOC_HARDDECOMMIT makes it inaccessible).
 *   Ready     usable.
 *
 * and moves between them only through these functions, named after Go's:
 *
 *   sys_alloc    None     -> Ready      metadata
 *   sys_reserve  None     -> Reserved   heap arenas, summary arrays
 *   sys_map      Reserved -> Prepared   heap growth
 *   sys_unmap    Prepared -> Reserved   undo of sys_map when a later step failed
 *   sys_used     Prepared -> Ready      pages handed out again
 *   sys_unused   Ready    -> Prepared   the scavenger
 *   sys_fault    Ready    -> Reserved   debugging aids
 *   sys_free     any      -> None
 *
 * os_stats counts the bytes in each state exactly. Each call may also add
 * to a purpose counter (heap, span metadata, ...) given by the caller.
 * Every address and length must be a multiple of the OS page size.
 *
 * Failure: sys_alloc, sys_reserve, sys_map, sys_used and sys_unused can be
 * refused by the OS (mmap or mprotect under RLIMIT_AS, RLIMIT_DATA, strict
 * overcommit, vm.max_map_count; madvise on mlock'ed memory). They then
 * return NULL or -1 with errno ENOMEM and change nothing: no state, no
 * counter. Every caller undoes its own earlier steps (see mheap.c). The
 * other transitions cannot fail. GOMALLOC_FAULT makes the N-th call of
 * one kind fail the same way (fault injection for the tests).
 */
#ifndef GOMALLOC_OS_H
#define GOMALLOC_OS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "internal.h"

enum os_state { OS_NONE, OS_RESERVED, OS_PREPARED, OS_READY };

/* The transitions that can fail, as GOMALLOC_FAULT names them. */
enum os_call { OS_CALL_ALLOC, OS_CALL_RESERVE, OS_CALL_MAP, OS_CALL_USED, OS_CALL_UNUSED, OS_CALLS };
#define OS_CALL_ANY OS_CALLS
HIDDEN extern const char *const os_call_name[OS_CALLS + 1]; /* "alloc" ... "unused", "any" */

struct os_stats {
    _Atomic uint64_t reserved;
    _Atomic uint64_t prepared;
    _Atomic uint64_t ready;
    _Atomic uint64_t mmap_calls, madvise_calls, mprotect_calls, munmap_calls;
};
HIDDEN extern struct os_stats os_stats;

typedef _Atomic uint64_t sysstat; /* a purpose counter, in bytes */

HIDDEN extern size_t phys_page_size;      /* OS page size (AT_PAGESZ) */
HIDDEN extern size_t phys_huge_page_size; /* transparent huge page size, 0 if none */
HIDDEN extern bool sys_hugepages_usable;  /* THP exist and are not disabled ("[never]") */

void os_init(void);

void *sys_alloc(size_t n, sysstat *stat);
void *sys_alloc_guarded(size_t n, sysstat *stat);
void *sys_reserve(void *hint, size_t n);
int sys_map(void *v, size_t n, sysstat *stat);
void sys_unmap(void *v, size_t n, sysstat *stat);
/* Make [v, v+n) Ready; `prepared` of those bytes were Prepared (scavenged),
 * the rest already Ready. */
int sys_used(void *v, size_t n, size_t prepared);
/* -1: the memory could not be released and is still Ready. */
int sys_unused(void *v, size_t n);
void sys_fault(void *v, size_t n);
void sys_free(void *v, size_t n, enum os_state from, sysstat *stat);
void sys_hugepage(void *v, size_t n);
/* Turn the Ready range [v, v+n) into huge pages now (MADV_COLLAPSE, Linux
 * 6.1+; copies the small pages, populates missing ones); best effort, like
 * sys_hugepage: a kernel that cannot leaves it as it is. */
void sys_collapse(void *v, size_t n);
/* Label a mapping in /proc/PID/maps ("[anon:gomalloc heap]"); best effort. */
void sys_name(void *v, size_t n, const char *name);

/* Fault injection (GOMALLOC_FAULT, parsed by options.c): calls of each
 * kind so far, and the one line printed at exit while it is set. */
uint64_t os_fault_calls(enum os_call kind); /* OS_CALL_ANY: all kinds */
uint64_t os_fault_injected(void);
void os_fault_report(void);

static inline void sysstat_add(sysstat *s, int64_t n) {
    if (s) atomic_fetch_add_explicit(s, (uint64_t)n, memory_order_relaxed);
}
static inline uint64_t sysstat_load(sysstat *s) {
    return atomic_load_explicit(s, memory_order_relaxed);
}

#endif /* GOMALLOC_OS_H */

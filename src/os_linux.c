/*
 * os_linux.c: every memory system call of the library.
 *
 * Owns: mmap, mprotect, madvise and munmap, the transitions between the four
 * address-space states declared in os.h, and the byte counters per state.
 * Go counterpart: runtime/mem.go (accounting) + runtime/mem_linux.go (calls).
 *
 * Linux mapping of the states:
 *   Reserved  mmap(PROT_NONE, MAP_NORESERVE)
 *   Prepared  mprotect(PROT_READ|PROT_WRITE) of part of a reservation;
 *             released pages are madvise(MADV_DONTNEED)'d, so RSS drops at
 *             once and the pages read back as zero (Go's default since 1.16;
 *             MADV_FREE would leave RSS high until memory pressure).
 *   Ready     the same mapping; Prepared -> Ready is free of system calls.
 * With GOMALLOC_HARDDECOMMIT=1 (Go's GODEBUG=harddecommit=1), Prepared is
 * PROT_NONE: sys_unused remaps the range inaccessible and sys_used makes it
 * read-write again, so any touch of released memory faults at once.
 *
 * Failure (os.h): a refused mmap/mprotect/madvise returns NULL or -1 with
 * errno ENOMEM and leaves the range, its state and every counter as they
 * were, so the caller can undo its own steps and report ENOMEM; nothing
 * here aborts on a refusal. sys_unused releases with madvise before it
 * revokes access (harddecommit), so a refused madvise changes nothing and a
 * refused mprotect only leaves released memory accessible. sys_unmap, the
 * undo of sys_map, cannot fail: if mprotect(PROT_NONE) is refused the range
 * stays accessible, but it is Prepared, so it holds no memory.
 *
 * Fault injection (GOMALLOC_FAULT=KIND:N[+], options.c): before its system
 * call, each failable transition counts itself per kind and in one sequence
 * over all kinds, and the N-th call of KIND (the N-th and every later one
 * with '+') fails as if the OS had refused it: no system call, errno
 * ENOMEM. The counting costs one predictable branch on options.fault while
 * the option is unset; these paths make system calls anyway, except
 * sys_used without harddecommit, which is then one load and a branch.
 * KIND:delay=US instead makes every call of KIND sleep first and fail
 * none: the window between a caller's steps grows, for the race tests.
 *
 * No locks: the counters are atomic, the calls are thread-safe.
 * errno: system-call failures set errno (ENOMEM on exhaustion); the callers
 * on free paths never fail here, and transitions that cannot fail keep errno.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "options.h"
#include "print.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif

struct os_stats os_stats;
size_t phys_page_size = 4096;
size_t phys_huge_page_size;
bool sys_hugepages_usable;

static _Atomic uint64_t *state_counter(enum os_state s) {
    switch (s) {
    case OS_RESERVED:
        return &os_stats.reserved;
    case OS_PREPARED:
        return &os_stats.prepared;
    case OS_READY:
        return &os_stats.ready;
    default:
        return NULL;
    }
}

static void move_bytes(enum os_state from, enum os_state to, size_t n) {
    _Atomic uint64_t *f = state_counter(from), *t = state_counter(to);
    if (f) atomic_fetch_sub_explicit(f, n, memory_order_relaxed);
    if (t) atomic_fetch_add_explicit(t, n, memory_order_relaxed);
}

/* ---- Fault injection ------------------------------------------------- */

const char *const os_call_name[OS_CALLS + 1] = {"alloc", "reserve", "map", "used", "unused", "any"};
static _Atomic uint64_t fault_calls[OS_CALLS + 1]; /* per kind; [OS_CALL_ANY]: all kinds */
static _Atomic uint64_t fault_hits;

/* Count a call of kind k; true if GOMALLOC_FAULT says it fails. */
static COLD bool fault_check(enum os_call k) {
    uint64_t nk = atomic_fetch_add_explicit(&fault_calls[k], 1, memory_order_relaxed) + 1;
    uint64_t na = atomic_fetch_add_explicit(&fault_calls[OS_CALL_ANY], 1, memory_order_relaxed) + 1;
    uint64_t n = options.fault_kind == OS_CALL_ANY ? na : options.fault_kind == (int)k ? nk : 0;
    if (options.fault_delay_us && n) {
        struct timespec ts = {0, (long)options.fault_delay_us * 1000};
        if (options.fault_delay_us >= 1000000) ts = (struct timespec){1, 0};
        int saved = errno;
        nanosleep(&ts, NULL);
        errno = saved;
    }
    if (!options.fault_n || n < options.fault_n || (n > options.fault_n && !options.fault_repeat)) return false;
    atomic_fetch_add_explicit(&fault_hits, 1, memory_order_relaxed);
    if (options.verbose)
        print_err("gomalloc: GOMALLOC_FAULT: %s call %llu refused\n", os_call_name[k], (unsigned long long)nk);
    errno = ENOMEM;
    return true;
}

#define INJECT(kind) (unlikely(options.fault) && fault_check(kind))

uint64_t os_fault_calls(enum os_call kind) { return atomic_load(&fault_calls[kind]); }
uint64_t os_fault_injected(void) { return atomic_load(&fault_hits); }

void os_fault_report(void) {
    print_err("gomalloc: GOMALLOC_FAULT: calls alloc %llu reserve %llu map %llu used %llu unused %llu any %llu; "
              "injected %llu\n",
              (unsigned long long)os_fault_calls(OS_CALL_ALLOC), (unsigned long long)os_fault_calls(OS_CALL_RESERVE),
              (unsigned long long)os_fault_calls(OS_CALL_MAP), (unsigned long long)os_fault_calls(OS_CALL_USED),
              (unsigned long long)os_fault_calls(OS_CALL_UNUSED), (unsigned long long)os_fault_calls(OS_CALL_ANY),
              (unsigned long long)os_fault_injected());
}

/* ---- Transitions ------------------------------------------------------ */

static void check_aligned(const char *op, void *v, size_t n) {
    if (((uintptr_t)v | n) & (phys_page_size - 1)) throw("%s(%p, %zu): not page aligned", op, v, n);
}

/* The start of a small sysfs file, NUL-terminated, into buf (cap bytes),
 * without allocating; its length, 0 if unreadable. */
static size_t read_sysfs(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0) n = 0;
    buf[n] = 0;
    return (size_t)n;
}

/* A small decimal number from a sysfs file (0 if none). */
static size_t read_sysfs_number(const char *path) {
    char buf[64];
    size_t n = read_sysfs(path, buf, sizeof buf), v = 0;
    for (size_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (size_t)(buf[i] - '0');
    return v;
}

/* Does a small sysfs file contain word? */
static bool sysfs_contains(const char *path, const char *word) {
    char buf[128];
    return read_sysfs(path, buf, sizeof buf) && strstr(buf, word) != NULL;
}

void os_init(void) {
    unsigned long ps = getauxval(AT_PAGESZ);
    if (ps >= 4096 && (ps & (ps - 1)) == 0) phys_page_size = ps;
    if (phys_page_size > 64 * 1024) throw("OS page size %zu not supported (max 64 KiB)", phys_page_size);
    size_t huge = read_sysfs_number("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
    /* Go ignores huge pages larger than a page-allocator chunk (4 MiB). */
    if (huge && (huge & (huge - 1)) == 0 && huge <= (4u << 20)) phys_huge_page_size = huge;
    /* Marking memory for huge pages is pointless where the system never
     * gives them, and would only keep the scavenger from releasing part of
     * a marked region (mheap.c, pagealloc.c region_releasable). */
    sys_hugepages_usable =
        phys_huge_page_size && !sysfs_contains("/sys/kernel/mm/transparent_hugepage/enabled", "[never]");
}

void *sys_alloc(size_t n, sysstat *stat) {
    check_aligned("sys_alloc", NULL, n);
    if (INJECT(OS_CALL_ALLOC)) return NULL;
    atomic_fetch_add_explicit(&os_stats.mmap_calls, 1, memory_order_relaxed);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    move_bytes(OS_NONE, OS_READY, n);
    sysstat_add(stat, (int64_t)n);
    return p;
}

/* Ready memory between two inaccessible guard pages (GOMALLOC_SECURE
 * metadata): n + 2 pages reserved, the middle mapped and used. The guards
 * stay Reserved. */
void *sys_alloc_guarded(size_t n, sysstat *stat) {
    size_t g = phys_page_size;
    char *r = sys_reserve(NULL, n + 2 * g);
    if (!r) return NULL;
    if (sys_map(r + g, n, stat) != 0) {
        sys_free(r, n + 2 * g, OS_RESERVED, NULL);
        return NULL;
    }
    if (sys_used(r + g, n, n) != 0) {
        sys_unmap(r + g, n, stat);
        sys_free(r, n + 2 * g, OS_RESERVED, NULL);
        return NULL;
    }
    return r + g;
}

void *sys_reserve(void *hint, size_t n) {
    check_aligned("sys_reserve", hint, n);
    if (INJECT(OS_CALL_RESERVE)) return NULL;
    atomic_fetch_add_explicit(&os_stats.mmap_calls, 1, memory_order_relaxed);
    void *p = mmap(hint, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    move_bytes(OS_NONE, OS_RESERVED, n);
    return p;
}

int sys_map(void *v, size_t n, sysstat *stat) {
    check_aligned("sys_map", v, n);
    if (INJECT(OS_CALL_MAP)) return -1;
    if (!options.harddecommit) {
        /* mprotect rather than mmap(MAP_FIXED): a failure leaves the
         * reservation intact, and strict overcommit charges only this range. */
        atomic_fetch_add_explicit(&os_stats.mprotect_calls, 1, memory_order_relaxed);
        if (mprotect(v, n, PROT_READ | PROT_WRITE) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    /* Under harddecommit, Prepared stays PROT_NONE: the reservation already is. */
    move_bytes(OS_RESERVED, OS_PREPARED, n);
    sysstat_add(stat, (int64_t)n);
    return 0;
}

void sys_unmap(void *v, size_t n, sysstat *stat) {
    check_aligned("sys_unmap", v, n);
    if (!options.harddecommit) {
        /* Under harddecommit Prepared is PROT_NONE already. If this is
         * refused (a split past vm.max_map_count), the range stays
         * accessible but holds no memory: it is never touched again before
         * the next sys_map. */
        int saved = errno;
        atomic_fetch_add_explicit(&os_stats.mprotect_calls, 1, memory_order_relaxed);
        mprotect(v, n, PROT_NONE);
        errno = saved;
    }
    move_bytes(OS_PREPARED, OS_RESERVED, n);
    if (stat) sysstat_add(stat, -(int64_t)n);
}

int sys_used(void *v, size_t n, size_t prepared) {
    check_aligned("sys_used", v, n);
    if (!prepared) return 0;
    if (INJECT(OS_CALL_USED)) return -1;
    if (options.harddecommit) {
        atomic_fetch_add_explicit(&os_stats.mprotect_calls, 1, memory_order_relaxed);
        if (mprotect(v, n, PROT_READ | PROT_WRITE) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
    move_bytes(OS_PREPARED, OS_READY, prepared);
    return 0;
}

int sys_unused(void *v, size_t n) {
    check_aligned("sys_unused", v, n);
    if (INJECT(OS_CALL_UNUSED)) return -1;
    int saved = errno;
    /* Release first: if madvise is refused (mlock'ed memory), nothing has
     * changed and the caller keeps the pages as they are. */
    atomic_fetch_add_explicit(&os_stats.madvise_calls, 1, memory_order_relaxed);
    if (madvise(v, n, MADV_DONTNEED) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (options.harddecommit) {
        /* Refused (vm.max_map_count): the pages are released all the same,
         * only stray touches of them are not caught. */
        atomic_fetch_add_explicit(&os_stats.mprotect_calls, 1, memory_order_relaxed);
        mprotect(v, n, PROT_NONE);
    }
    errno = saved;
    move_bytes(OS_READY, OS_PREPARED, n);
    return 0;
}

void sys_fault(void *v, size_t n) {
    check_aligned("sys_fault", v, n);
    int saved = errno;
    atomic_fetch_add_explicit(&os_stats.mprotect_calls, 1, memory_order_relaxed);
    mprotect(v, n, PROT_NONE);
    madvise(v, n, MADV_DONTNEED);
    errno = saved;
    move_bytes(OS_READY, OS_RESERVED, n);
}

void sys_free(void *v, size_t n, enum os_state from, sysstat *stat) {
    check_aligned("sys_free", v, n);
    int saved = errno;
    atomic_fetch_add_explicit(&os_stats.munmap_calls, 1, memory_order_relaxed);
    munmap(v, n);
    errno = saved;
    move_bytes(from, OS_NONE, n);
    if (stat) sysstat_add(stat, -(int64_t)n);
}

void sys_hugepage(void *v, size_t n) {
    int saved = errno;
    madvise(v, n, MADV_HUGEPAGE);
    errno = saved;
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
void sys_collapse(void *v, size_t n) {
    int saved = errno;
    madvise(v, n, MADV_COLLAPSE);
    errno = saved;
}

void sys_name(void *v, size_t n, const char *name) {
    int saved = errno;
    prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, (unsigned long)v, n, (unsigned long)name);
    errno = saved;
}

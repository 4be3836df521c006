/*
 * Unit tests of the OS layer (src/os_linux.c), fixalloc, options parsing
 * and the non-allocating printer.
 */
#include "testlib.h"

#include <signal.h>
#include <sys/mman.h>

#include "fixalloc.h"
#include "malloc.h"
#include "options.h"
#include "os.h"
#include "print.h"

static uint64_t st(enum os_state s) {
    return s == OS_RESERVED ? os_stats.reserved : s == OS_PREPARED ? os_stats.prepared : os_stats.ready;
}

TEST(state_transitions_counted_exactly) {
    malloc_init();
    size_t n = 1 << 20;
    uint64_t r0 = st(OS_RESERVED), p0 = st(OS_PREPARED), y0 = st(OS_READY);
    char *v = sys_reserve(NULL, n);
    CHECK(v != NULL);
    CHECK(st(OS_RESERVED) == r0 + n);
    CHECK(sys_map(v, n, NULL) == 0);
    CHECK(st(OS_RESERVED) == r0 && st(OS_PREPARED) == p0 + n);
    CHECK(sys_used(v, n, n) == 0);
    CHECK(st(OS_PREPARED) == p0 && st(OS_READY) == y0 + n);
    memset(v, 0xab, n);
    sys_unused(v + 4096, 8192);
    CHECK(st(OS_READY) == y0 + n - 8192 && st(OS_PREPARED) == p0 + 8192);
    /* released pages read back as zero (MADV_DONTNEED) */
    CHECK(v[4096] == 0 && v[4096 + 8191] == 0 && (unsigned char)v[0] == 0xab);
    CHECK(sys_used(v + 4096, 8192, 8192) == 0);
    CHECK(st(OS_READY) == y0 + n);
    sys_fault(v, 4096);
    CHECK(st(OS_READY) == y0 + n - 4096 && st(OS_RESERVED) == r0 + 4096);
    sys_free(v, 4096, OS_RESERVED, NULL);
    sys_free(v + 4096, n - 4096, OS_READY, NULL);
    CHECK(st(OS_RESERVED) == r0 && st(OS_PREPARED) == p0 && st(OS_READY) == y0);
    char *m = sys_alloc(65536, NULL);
    CHECK(m && st(OS_READY) == y0 + 65536);
    sys_free(m, 65536, OS_READY, NULL);
}

TEST(unmap_undoes_map) {
    malloc_init();
    size_t n = 1 << 20;
    uint64_t r0 = st(OS_RESERVED), p0 = st(OS_PREPARED), y0 = st(OS_READY);
    static sysstat stat;
    char *v = sys_reserve(NULL, n);
    CHECK(v != NULL);
    CHECK(sys_map(v, n, &stat) == 0 && sysstat_load(&stat) == n);
    errno = 1234;
    sys_unmap(v, n, &stat);
    CHECK(errno == 1234);
    CHECK(st(OS_RESERVED) == r0 + n && st(OS_PREPARED) == p0 && st(OS_READY) == y0 && sysstat_load(&stat) == 0);
    /* and it can be mapped again */
    CHECK(sys_map(v, n, &stat) == 0 && sys_used(v, n, n) == 0);
    memset(v, 1, n);
    CHECK(sys_unused(v, n) == 0 && v[n - 1] == 0);
    sys_free(v, n, OS_PREPARED, &stat);
    CHECK(st(OS_RESERVED) == r0 && st(OS_PREPARED) == p0 && st(OS_READY) == y0);
}

/* Counters of the OS layer that a refused call must leave alone. */
struct snap {
    uint64_t r, p, y, mmaps, mprotects, madvises;
};
static struct snap snap(void) {
    return (struct snap){st(OS_RESERVED), st(OS_PREPARED), st(OS_READY), os_stats.mmap_calls, os_stats.mprotect_calls,
                         os_stats.madvise_calls};
}
static int same(struct snap a, struct snap b) {
    return a.r == b.r && a.p == b.p && a.y == b.y && a.mmaps == b.mmaps && a.mprotects == b.mprotects &&
           a.madvises == b.madvises;
}

static void fault_on(int kind, uint64_t n, int repeat) {
    options.fault_kind = kind;
    options.fault_n = n;
    options.fault_repeat = repeat;
    options.fault = 1;
}

TEST(fault_injection_refuses_the_nth_call) {
    malloc_init();
    size_t n = 64 << 10;
    /* The 2nd reserve from now fails, once, with no system call. */
    fault_on(OS_CALL_RESERVE, os_fault_calls(OS_CALL_RESERVE) + 2, 0);
    uint64_t hits = os_fault_injected();
    char *a = sys_reserve(NULL, n);
    CHECK(a != NULL);
    struct snap s0 = snap();
    errno = 0;
    CHECK(sys_reserve(NULL, n) == NULL && errno == ENOMEM);
    CHECK(same(s0, snap()) && os_fault_injected() == hits + 1);
    char *b = sys_reserve(NULL, n);
    CHECK(b != NULL);
    /* map: every call from the next one on */
    fault_on(OS_CALL_MAP, os_fault_calls(OS_CALL_MAP) + 1, 1);
    s0 = snap();
    errno = 0;
    CHECK(sys_map(a, n, NULL) == -1 && errno == ENOMEM && same(s0, snap()));
    CHECK(sys_map(a, n, NULL) == -1 && sys_map(b, n, NULL) == -1 && same(s0, snap()));
    options.fault = 0;
    CHECK(sys_map(a, n, NULL) == 0 && sys_map(b, n, NULL) == 0);
    /* used: counted only when something is Prepared; any: one sequence */
    fault_on(OS_CALL_ANY, os_fault_calls(OS_CALL_ANY) + 2, 0);
    uint64_t used0 = os_fault_calls(OS_CALL_USED);
    CHECK(sys_used(a, n, 0) == 0 && os_fault_calls(OS_CALL_USED) == used0);
    CHECK(sys_used(a, n, n) == 0); /* any call 1 */
    s0 = snap();
    errno = 0;
    CHECK(sys_used(b, n, n) == -1 && errno == ENOMEM && same(s0, snap())); /* any call 2 */
    CHECK(sys_used(b, n, n) == 0);
    /* unused: refused means still Ready, contents kept */
    memset(a, 7, n);
    fault_on(OS_CALL_UNUSED, os_fault_calls(OS_CALL_UNUSED) + 1, 0);
    s0 = snap();
    CHECK(sys_unused(a, n) == -1 && same(s0, snap()) && a[100] == 7);
    CHECK(sys_unused(a, n) == 0 && a[100] == 0);
    /* alloc */
    fault_on(OS_CALL_ALLOC, os_fault_calls(OS_CALL_ALLOC) + 1, 0);
    s0 = snap();
    errno = 0;
    CHECK(sys_alloc(n, NULL) == NULL && errno == ENOMEM && same(s0, snap()));
    options.fault = 0;
    void *m = sys_alloc(n, NULL);
    CHECK(m != NULL);
    sys_free(m, n, OS_READY, NULL);
    sys_free(a, n, OS_PREPARED, NULL);
    sys_free(b, n, OS_READY, NULL);
}

static void touch_released(void *arg) {
    (void)arg;
    options.harddecommit = 1;
    char *v = sys_reserve(NULL, 65536);
    if (sys_map(v, 65536, NULL) || sys_used(v, 65536, 65536)) _exit(3);
    v[0] = 1;          /* Ready: fine */
    sys_unused(v, 65536);
    v[100] = 1;        /* Prepared under harddecommit: must fault */
    _exit(0);
}

TEST(harddecommit_faults_on_released_memory) {
    char err[256];
    int status = tl_run_child(touch_released, NULL, err, sizeof err, 10);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "status %#x", status);
}

TEST(fixalloc_reuses_and_zeroes) {
    static fixalloc f, g;
    static sysstat stat;
    fixalloc_init(&f, 40, 1, &stat);
    fixalloc_init(&g, 40, 0, &stat);
    char *a = fixalloc_alloc(&f), *b = fixalloc_alloc(&f);
    CHECK(a && b && a != b);
    CHECK(fixalloc_inuse(&f) == 2 * 40);
    memset(a, 0x5a, 40);
    fixalloc_free(&f, a);
    char *c = fixalloc_alloc(&f);
    CHECK(c == a);
    for (int i = 0; i < 40; i++) CHECKF(c[i] == 0, "byte %d not zeroed", i);
    char *d = fixalloc_alloc(&g);
    memset(d, 0x5a, 40);
    fixalloc_free(&g, d);
    char *e = fixalloc_alloc(&g);
    CHECK(e == d && (unsigned char)e[8] == 0x5a); /* zero = 0 keeps contents past the link */
    CHECK(sysstat_load(&stat) >= 16384);
    for (int i = 0; i < 2000; i++) CHECK(fixalloc_alloc(&f) != NULL); /* several chunks */
}

TEST(parse_bytes_go_syntax) {
    uint64_t v;
    CHECK(parse_bytes("512MiB", &v) == 0 && v == 512ull << 20);
    CHECK(parse_bytes("1GiB", &v) == 0 && v == 1ull << 30);
    CHECK(parse_bytes("1.5GiB", &v) == 0 && v == 3ull << 29);
    CHECK(parse_bytes("12345", &v) == 0 && v == 12345);
    CHECK(parse_bytes("100B", &v) == 0 && v == 100);
    CHECK(parse_bytes("64KiB", &v) == 0 && v == 65536);
    CHECK(parse_bytes("2TiB", &v) == 0 && v == 2ull << 40);
    CHECK(parse_bytes("12MB", &v) != 0);
    CHECK(parse_bytes("", &v) != 0);
    CHECK(parse_bytes("-1", &v) != 0);
    CHECK(parse_bytes("99999999999999999999999", &v) != 0);
}

TEST(printer_formats_without_allocating) {
    char buf[128];
    format_buf(buf, sizeof buf, "%s|%5d|%-5d|%05u|%x|%p|%zu|%lld|%c|%%", "ab", 42, -7, 9u, 255u, (void *)0x10,
               (size_t)123, -5ll, 'z');
    CHECKF(strcmp(buf, "ab|   42|-7   |00009|ff|0x10|123|-5|z|%") == 0, "got '%s'", buf);
    struct writer w;
    writer_init(&w, buf, sizeof buf, -1);
    writer_bytes(&w, 1536);
    writer_puts(&w, " ");
    writer_bytes(&w, 100);
    writer_puts(&w, " ");
    writer_bytes(&w, 3ull << 30);
    CHECKF(strcmp(buf, "1.5 KiB 100 B 3.0 GiB") == 0, "got '%s'", buf);
    /* truncation, never overflow */
    char small[8];
    size_t n = format_buf(small, sizeof small, "%s", "0123456789");
    CHECK(n == 7 && strcmp(small, "0123456") == 0);
}

TEST_MAIN()

/*
 * memret: memory return. Allocates about 1.5 GiB of mixed objects (95%
 * small, 5% large, every byte touched), frees them all, then reports the
 * resident set: right after the frees, after 1 s and 3 s of idling (what a
 * background mechanism returns on its own), and right after malloc_trim(0)
 * (what an explicit request returns). The idle phases sleep, so nothing
 * but the allocator's own machinery can release memory.
 *
 *   memret [mib]      (default 1536)
 *
 * stdout: one checksum line (the same under every allocator);
 * stderr: "memret-rss peak=K free=K t1=K t3=K trim=K" in KiB.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long rss_kib(void) {
    char b[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return -1;
    b[n] = 0;
    long size, res;
    if (sscanf(b, "%ld %ld", &size, &res) != 2) return -1;
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

int main(int argc, char **argv) {
    size_t target = (size_t)(argc > 1 ? atol(argv[1]) : 1536) << 20;
    size_t cap = target / 64, n = 0, total = 0;
    void **objs = malloc(cap * sizeof *objs);
    uint64_t r = 0x9E3779B97F4A7C15ull, sum = 0;
    while (total < target && n < cap) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        size_t sz = r % 100 < 95 ? 16 + (r >> 20) % 1000 : 40000 + (r >> 20) % 200000;
        char *p = malloc(sz);
        if (!p) {
            fprintf(stderr, "memret: out of memory\n");
            return 1;
        }
        memset(p, (int)(n & 0xff), sz);
        objs[n++] = p;
        total += sz;
    }
    long peak = rss_kib();
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = objs[i];
        sum += p[0] + (uint64_t)i;
        free(p);
    }
    free(objs);
    long after = rss_kib();
    sleep(1);
    long t1 = rss_kib();
    sleep(2);
    long t3 = rss_kib();
    malloc_trim(0);
    long trim = rss_kib();
    printf("memret mib=%zu objects=%zu checksum=%016llx\n", target >> 20, n, (unsigned long long)sum);
    fprintf(stderr, "memret-rss peak=%ld free=%ld t1=%ld t3=%ld trim=%ld\n", peak, after, t1, t3, trim);
    return 0;
}

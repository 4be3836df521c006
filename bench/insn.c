/*
 * insn: the malloc+free pair that bench-insn counts instructions of.
 *
 *   insn SIZE ITERS
 *
 * Eight objects of SIZE are allocated first and stay live, so the pair never
 * empties its page or span (otherwise an allocator such as mimalloc pays its
 * "page became empty" path at every free, which is not the fast path).
 * Then 1000 warm-up pairs, then ITERS pairs of malloc(SIZE); free(). The pointer
 * goes through a volatile sink and the file is built with
 * -fno-builtin-malloc -fno-builtin-free, so the compiler can neither elide
 * nor merge the pair. bench-insn runs this under callgrind with two values of
 * ITERS and divides the difference in instructions by the difference in
 * ITERS: start-up, warm-up and exit cancel out, leaving one pair plus the
 * loop (10 instructions: counter, compare, branch, sink store and load,
 * argument, the two calls and their two PLT jumps).
 */
#include <stdio.h>
#include <stdlib.h>

static void *volatile sink;

int main(int argc, char **argv)
{
    if (argc != 3) { fputs("usage: insn SIZE ITERS\n", stderr); return 2; }
    size_t size = strtoul(argv[1], NULL, 0);
    long iters = strtol(argv[2], NULL, 0);
    static void *volatile anchor[8];
    for (int i = 0; i < 8; i++)
        if (!(anchor[i] = malloc(size))) return 1;
    for (int i = 0; i < 1000; i++) {
        sink = malloc(size);
        if (!sink) return 1;
        free(sink);
    }
    for (long i = 0; i < iters; i++) {
        sink = malloc(size);
        free(sink);
    }
    printf("insn size=%zu iters=%ld\n", size, iters);
    return 0;
}

/*
 * mksizeclasses: generates src/sizeclasses.h, Go's size-class table.
 *
 * Go counterpart: src/runtime/_mkmalloc/mksizeclasses.go. The rules are
 * Go's, applied the same way, so the table is Go's 68 classes exactly:
 *
 *   1. Walk sizes upward from 8 in steps of the current alignment. The step
 *      changes at powers of two: 8 below 32, 16 from 32, size/8 from 128,
 *      256 from 2048.
 *   2. For each size pick the fewest 8 KiB pages whose leftover
 *      (span % size) is at most 1/8 of the span (tail waste <= 12.5%).
 *   3. If the previous class has the same page count and object count, the
 *      new size replaces it (grows it) instead of adding a class.
 *   4. Second pass: grow each class to floor(span / objects), rounded down to
 *      a multiple of 128, when that is larger (same objects, less waste).
 *   5. Check: exactly 68 classes, and the division magic
 *      divmul = floor((2^32 - 1) / size) + 1 gives offset / size exactly for
 *      every offset 0..span bytes.
 *
 * Beyond Go, it emits the tables plain malloc uses: requests of 16 bytes or
 * more must be 16-byte aligned, so sizes 17..24 skip Go's 24-byte class
 * (which is only 8-aligned) and take the 32-byte class. Go's own lookup
 * tables are kept for the garbage-collected mode.
 *
 * Usage: mksizeclasses > src/sizeclasses.h   (make sizeclasses)
 * The test suite regenerates the file and diffs it with the committed one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum {
    page_size = 8192,
    max_small_size = 32768,
    small_size_div = 8,
    small_size_max = 1024,
    large_size_div = 128,
    num_classes_expected = 68,
    min_heap_align = 8,
};

struct class {
    int size;
    int npages;
    uint32_t divmul;
};

static struct class classes[128];
static int nclasses;

static int is_pow2(int x) { return (x & (x - 1)) == 0; }

static void fail(const char *msg, int a) {
    fprintf(stderr, "mksizeclasses: %s (%d)\n", msg, a);
    exit(1);
}

static void make_classes(void) {
    nclasses = 1; /* class 0: large objects */
    int align = min_heap_align;
    for (int size = align; size <= max_small_size; size += align) {
        if (is_pow2(size)) {
            if (size >= 2048)
                align = 256;
            else if (size >= 128)
                align = size / 8;
            else if (size >= 32)
                align = 16;
        }
        if (!is_pow2(align)) fail("alignment not a power of two", align);
        int allocsize = page_size;
        while (allocsize % size > allocsize / 8) allocsize += page_size;
        int npages = allocsize / page_size;
        struct class *prev = &classes[nclasses - 1];
        if (nclasses > 1 && npages == prev->npages && allocsize / size == allocsize / prev->size) {
            prev->size = size;
            continue;
        }
        classes[nclasses].size = size;
        classes[nclasses].npages = npages;
        nclasses++;
    }
    for (int i = 1; i < nclasses; i++) {
        struct class *c = &classes[i];
        int psize = c->npages * page_size;
        int new_size = (psize / (psize / c->size)) & ~(large_size_div - 1);
        if (new_size > c->size) c->size = new_size;
    }
    if (nclasses != num_classes_expected) fail("number of size classes changed", nclasses);
    for (int i = 1; i < nclasses; i++) {
        struct class *c = &classes[i];
        c->divmul = (uint32_t)(UINT32_MAX / (uint32_t)c->size) + 1;
        int max = c->npages * page_size;
        for (int n = 0; n <= max; n++) {
            uint32_t q = (uint32_t)(((uint64_t)n * c->divmul) >> 32);
            if ((int)q != n / c->size) fail("division magic inexact for class", i);
        }
    }
}

/* Largest power of two dividing size, capped at the page size (spans are
 * page aligned, so object i is aligned to gcd(size, page)). */
static int min_align(int size) {
    int a = size & -size;
    return a > page_size ? page_size : a;
}

/* Smallest class with size >= n; with aligned16, also 16-byte aligned when
 * n >= 16. */
static int class_for(int n, int aligned16) {
    for (int c = 1; c < nclasses; c++) {
        if (classes[c].size < n) continue;
        if (aligned16 && n >= 16 && min_align(classes[c].size) < 16) continue;
        return c;
    }
    fail("no class for size", n);
    return 0;
}

static void emit_table(const char *type, const char *name, int len, int (*fn)(int)) {
    printf("static const %s %s[%d] = {", type, name, len);
    for (int i = 0; i < len; i++) printf("%s%d,", i % 16 ? " " : "\n    ", fn(i));
    printf("\n};\n\n");
}

static int go8(int i) { return class_for(i * small_size_div > 0 ? i * small_size_div : 1, 0); }
static int go128(int i) { return class_for(small_size_max + i * large_size_div, 0); }
/* malloc's tables give the span class (Go's spanClass: class << 1 | noscan;
 * malloc's objects are noscan), which is what the fast path indexes by.
 * Requests below 16 bytes get the 16-byte class, never the 8-byte one: a
 * free object must hold the free tag in its word 1 (src/mspan.h), and Go
 * too serves noscan objects below 16 bytes from 16-byte blocks (its tiny
 * allocator). */
static int malloc8(int i) { return class_for(i * small_size_div > 16 ? i * small_size_div : 16, 1) << 1 | 1; }
static int malloc128(int i) { return class_for(small_size_max + i * large_size_div, 1) << 1 | 1; }
/* The same, as the byte offset of the span class's slot in the thread cache
 * (src/mcache.h, cache_slot_offset: per size class a 640-byte block, its
 * noscan slot at 576; static asserts there keep the two in step): the fast
 * path then adds it to the cache address with no shift. */
#define CLASS_BLOCK_BYTES 640
#define NOSCAN_SLOT_OFFSET 576
static int slot_offset(int spc) { return (spc >> 1) * CLASS_BLOCK_BYTES + (spc & 1) * NOSCAN_SLOT_OFFSET; }
static int slot8(int i) { return slot_offset(malloc8(i)); }
static int slot128(int i) { return slot_offset(malloc128(i)); }
/* slot8 indexed by the size itself (0..1024): malloc's fast path then needs
 * no rounding add and no shift, for a 2 KiB table instead of 258 bytes. */
static int slot1(int size) { return slot8((size + small_size_div - 1) / small_size_div); }

int main(void) {
    make_classes();
    printf("// Code generated by tools/mksizeclasses.c; DO NOT EDIT.\n");
    printf("// Regenerate with: make sizeclasses\n//\n");
    printf("// Go's size classes (src/runtime/sizeclasses.go), same rules, same table.\n//\n");
    printf("// class  bytes/obj  bytes/span  objects  tail waste  max waste  min align\n");
    for (int i = 1; i < nclasses; i++) {
        struct class *c = &classes[i];
        int spanbytes = c->npages * page_size;
        int objects = spanbytes / c->size;
        int tail = spanbytes % c->size;
        int prev = classes[i - 1].size;
        double maxwaste = (double)((c->size - prev - 1) * objects + tail) / spanbytes;
        printf("// %5d  %9d  %10d  %7d  %10d  %8.2f%%  %9d\n", i, c->size, spanbytes, objects, tail,
               100 * maxwaste, min_align(c->size));
    }
    printf("//\n// Plain malloc: sizes 17..24 use class 4 (32 B) so that every request of\n"
           "// 16 bytes or more is 16-byte aligned; class 3 (24 B, 8-aligned) serves\n"
           "// only the garbage-collected mode.\n\n");
    printf("#ifndef GOMALLOC_SIZECLASSES_H\n#define GOMALLOC_SIZECLASSES_H\n\n");
    printf("#include <stdint.h>\n\n");
    printf("#define NUM_SIZE_CLASSES %d\n", nclasses);
    printf("#define PAGE_SHIFT 13\n#define PAGE_SIZE %d\n", page_size);
    printf("#define MAX_SMALL_SIZE %d\n", max_small_size);
    printf("#define SMALL_SIZE_DIV %d\n#define SMALL_SIZE_MAX %d\n#define LARGE_SIZE_DIV %d\n",
           small_size_div, small_size_max, large_size_div);
    int maxobjs = 0, maxpages = 0;
    for (int i = 1; i < nclasses; i++) {
        int o = classes[i].npages * page_size / classes[i].size;
        if (o > maxobjs) maxobjs = o;
        if (classes[i].npages > maxpages) maxpages = classes[i].npages;
    }
    printf("#define MAX_OBJS_PER_SPAN %d\n#define MAX_SIZE_CLASS_NPAGES %d\n\n", maxobjs, maxpages);

    printf("static const uint16_t class_to_size[%d] = {", nclasses);
    for (int i = 0; i < nclasses; i++) printf("%s%d,", i % 12 ? " " : "\n    ", classes[i].size);
    printf("\n};\n\n");
    printf("static const uint8_t class_to_npages[%d] = {", nclasses);
    for (int i = 0; i < nclasses; i++) printf("%s%d,", i % 16 ? " " : "\n    ", classes[i].npages);
    printf("\n};\n\n");
    printf("static const uint16_t class_to_nelems[%d] = {", nclasses);
    for (int i = 0; i < nclasses; i++)
        printf("%s%d,", i % 12 ? " " : "\n    ",
               i ? classes[i].npages * page_size / classes[i].size : 0);
    printf("\n};\n\n");
    printf("static const uint32_t class_to_divmagic[%d] = {", nclasses);
    for (int i = 0; i < nclasses; i++) printf("%s%u,", i % 6 ? " " : "\n    ", classes[i].divmul);
    printf("\n};\n\n");
    printf("static const uint16_t class_to_min_align[%d] = {", nclasses);
    for (int i = 0; i < nclasses; i++)
        printf("%s%d,", i % 12 ? " " : "\n    ", i ? min_align(classes[i].size) : page_size);
    printf("\n};\n\n");
    printf("// Go's lookups: size <= 1024: size_to_class8[(size + 7) >> 3];\n"
           "// else size_to_class128[(size - 1024 + 127) >> 7].\n");
    emit_table("uint8_t", "size_to_class8", small_size_max / small_size_div + 1, go8);
    emit_table("uint8_t", "size_to_class128", (max_small_size - small_size_max) / large_size_div + 1,
                  go128);
    printf("// Plain malloc's lookups (16-byte alignment from 16 bytes up), to noscan span classes.\n");
    emit_table("uint8_t", "malloc_size_to_spanclass8", small_size_max / small_size_div + 1, malloc8);
    emit_table("uint8_t", "malloc_size_to_spanclass128",
                  (max_small_size - small_size_max) / large_size_div + 1, malloc128);
    emit_table("uint16_t", "malloc_size_to_slot1", small_size_max + 1, slot1);
    emit_table("uint16_t", "malloc_size_to_slot128", (max_small_size - small_size_max) / large_size_div + 1,
                  slot128);
    printf("#endif // GOMALLOC_SIZECLASSES_H\n");
    return 0;
}

/*
 * fuzz_alloc.c: libFuzzer harness for the whole allocator.
 *
 * The input is a program: each operation is one byte (the opcode) followed
 * by its operands, read from the input as needed (missing bytes read as 0).
 * The main thread runs the program through the gm_ API (the fuzzer binary
 * keeps glibc's malloc for libFuzzer itself: src/override.c is not linked);
 * up to three worker threads take objects handed to them, free or realloc
 * them, allocate and keep objects of their own, send objects back to the
 * main thread (whose frees are then remote, or into unowned spans once the
 * worker has exited) and exit and are created again. Workers run their
 * queues concurrently with the main thread; SYNC operations and the end of
 * each input wait for them.
 *
 * Every object carries a fill pattern derived from a seed; it is verified
 * before every free, realloc and at the end of the input, and realloc must
 * preserve the common prefix. calloc memory must read zero, alignments must
 * hold, usable sizes must cover the request (and be writable), error cases
 * must fail with the right errno. At the end of every input everything is
 * freed, the workers exit, and heap_check(HEAP_CHECK_QUIESCENT) verifies
 * every structure of the heap (src/check.c); SYNC operations may run it in
 * the middle of an input too. Any failure prints what went wrong and aborts,
 * which libFuzzer reports as a crash with the input saved.
 *
 * Build and run: make fuzz (FUZZ_TIME=seconds); see README.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gomalloc.h"
#include "sizeclasses.h"

/* ---- Input ------------------------------------------------------------- */

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct in *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}
static uint16_t u16(struct in *in) { return (uint16_t)(u8(in) | u8(in) << 8); }

#define DIE(...)                                                                                            \
    do {                                                                                                     \
        fprintf(stderr, "fuzz_alloc: " __VA_ARGS__);                                                         \
        fprintf(stderr, "\n");                                                                               \
        abort();                                                                                             \
    } while (0)

/* A size from a selector and 16 random bits: mostly small, every class
 * boundary, sometimes large (up to ~1.3 MiB). */
static size_t decode_size(struct in *in) {
    uint8_t sel = u8(in);
    uint16_t r = u16(in);
    switch (sel % 10) {
    case 0: case 1: return r % 33;
    case 2: return r % 257;
    case 3: return r % 2049;
    case 4: return r % 32769;
    case 5: { /* a class size, one below or one above */
        unsigned cls = 1 + r % (NUM_SIZE_CLASSES - 1);
        return class_to_size[cls] + (size_t)((r >> 8) % 3) - 1;
    }
    case 6: return 32768 + (size_t)r * 4;             /* large, up to 288 KiB */
    case 7: return (size_t)r % 9 * 8192 + (r >> 4) % 3; /* page multiples, +0..2 */
    case 8: return (r & 15) == 0 ? (size_t)r * 20 : r % 100; /* rarely up to 1.3 MiB */
    default: return r % 600;
    }
}

static size_t decode_align(struct in *in) { return (size_t)1 << (u8(in) % 23); } /* 1 B .. 4 MiB */

/* ---- Objects and their patterns ---------------------------------------- */

enum kind { K_MALLOC, K_ALIGNED };

struct obj {
    uint8_t *p;
    size_t size;  /* bytes requested (and filled) */
    size_t align; /* K_ALIGNED: the alignment asked for */
    uint64_t seed;
    uint8_t kind;
    bool sized_ok; /* the size may be given to free_sized (not after an in-place realloc) */
};

static inline uint64_t pat(uint64_t seed, size_t i) { return (seed * 0x9E3779B97F4A7C15ull) ^ (i * 0xD6E8FEB86659FD93ull); }

/* The pattern covers every byte of objects up to 64 KiB; of larger ones the
 * first and last 4 KiB and one word in 2048 (16 KiB), so that big objects
 * do not cost a page fault per page. Neither instrumented for coverage nor
 * checked by ASan: these loops are the harness's, and dominated its time. */
#define NOCOV __attribute__((no_sanitize("coverage", "address")))
#define FULL_PATTERN (64u << 10)
static inline NOCOV bool sampled(size_t i, size_t w) { return i < 512 || i + 512 >= w || i % 2048 == 0; }

static NOCOV void fill(uint8_t *p, size_t n, uint64_t seed) {
    size_t w = n / 8;
    uint64_t *q = (uint64_t *)p; /* gm_ results are at least 8-aligned */
    bool full = n <= FULL_PATTERN;
    for (size_t i = 0; i < w; i++)
        if (full || sampled(i, w)) q[i] = pat(seed, i);
    if (n % 8) {
        uint64_t last = pat(seed, w);
        memcpy(p + w * 8, &last, n % 8);
    }
}

/* First byte index in [0, n) where p differs from the pattern that
 * fill(p, filled, seed) wrote, or n. */
static NOCOV size_t check_fill(const uint8_t *p, size_t n, uint64_t seed, size_t filled) {
    size_t w = n / 8, fw = filled / 8;
    const uint64_t *q = (const uint64_t *)p;
    bool full = filled <= FULL_PATTERN;
    for (size_t i = 0; i < w; i++)
        if ((full || sampled(i, fw)) && q[i] != pat(seed, i)) return i * 8;
    if (n % 8 && (full || w == fw || sampled(w, fw))) {
        uint64_t last = pat(seed, w);
        if (memcmp(p + w * 8, &last, n % 8)) return w * 8;
    }
    return n;
}

static void verify(const struct obj *o, const char *when) {
    size_t at = check_fill(o->p, o->size, o->seed, o->size);
    if (at != o->size)
        DIE("%s: object %p (%zu bytes, seed %llu) corrupted at byte %zu", when, (void *)o->p, o->size,
            (unsigned long long)o->seed, at);
}

static void check_new(void *p, size_t size, size_t align, const char *what) {
    if (!p) DIE("%s(%zu) returned NULL (errno %d)", what, size, errno);
    size_t want = size >= 16 ? 16 : 8;
    if (align > want) want = align;
    if ((uintptr_t)p % want) DIE("%s(%zu, align %zu) = %p: misaligned", what, size, align, p);
    size_t us = gm_usable_size(p);
    if (us < size) DIE("%s(%zu) = %p: usable size %zu", what, size, p, us);
}

static uint64_t next_seed = 1;

static void obj_set(struct obj *o, void *p, size_t size, size_t align, uint8_t kind) {
    o->p = p;
    o->size = size;
    o->align = align;
    o->kind = kind;
    o->sized_ok = true;
    o->seed = next_seed++;
    fill(o->p, size, o->seed);
}

/* Free o, with free, free_sized or free_aligned_sized as sel says. */
static void obj_free(struct obj *o, uint8_t sel, const char *who) {
    if (!o->p) return;
    verify(o, who);
    int saved = errno = 12345;
    if (sel % 3 == 1 && o->sized_ok && o->kind == K_MALLOC)
        gm_free_sized(o->p, o->size);
    else if (sel % 3 == 2 && o->sized_ok && o->kind == K_ALIGNED)
        gm_free_aligned_sized(o->p, o->align, o->size);
    else
        gm_free(o->p);
    if (errno != saved) DIE("free changed errno to %d", errno);
    o->p = NULL;
}

/* realloc o to size, checking the kept prefix; o is refilled. */
static void obj_realloc(struct obj *o, size_t size, const char *who) {
    if (o->p) verify(o, who);
    uint8_t *old = o->p;
    size_t keep = o->size < size ? o->size : size;
    uint8_t *q = gm_realloc(o->p, size);
    if (size == 0 && old) {
        if (q) DIE("realloc(%p, 0) returned %p, not NULL", (void *)old, (void *)q);
        o->p = NULL;
        return;
    }
    check_new(q, size, 1, "realloc");
    if (old && check_fill(q, keep, o->seed, o->size) != keep) DIE("realloc(%p, %zu) lost the contents", (void *)old, size);
    obj_set(o, q, size, 1, K_MALLOC); /* even in place, size is what free_sized gets now */
}

/* ---- Workers --------------------------------------------------------------- */

enum { C_FREE, C_REALLOC, C_KEEP, C_ALLOC, C_RETURN, C_FREE_KEPT, C_EXIT };

struct cmd {
    uint8_t op, sel;
    size_t size;
    unsigned count;
    struct obj o;
};

#define NWORKERS 3
#define QCAP 64
#define KEPT 96
#define NSLOTS 64
#define RET_CAP 1024

struct worker {
    pthread_t t;
    bool live;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cmd q[QCAP];
    unsigned head, tail; /* tail - head commands queued */
    bool busy;
    struct obj kept[KEPT];
    unsigned nkept;
};

static struct worker workers[NWORKERS];

/* Objects sent back to the main thread. */
static pthread_mutex_t ret_mu = PTHREAD_MUTEX_INITIALIZER;
static struct obj returned[RET_CAP];
static unsigned nreturned;

static struct obj slots[NSLOTS]; /* the main thread's objects */

static void give_back(struct obj *o) {
    pthread_mutex_lock(&ret_mu);
    if (nreturned < RET_CAP) {
        returned[nreturned++] = *o;
        o->p = NULL;
    }
    pthread_mutex_unlock(&ret_mu);
    if (o->p) obj_free(o, 0, "worker give back (full)");
}

static void keep(struct worker *w, struct obj *o) {
    if (w->nkept == KEPT) {
        obj_free(&w->kept[0], 1, "worker keep (evict)");
        w->kept[0] = w->kept[--w->nkept];
    }
    w->kept[w->nkept++] = *o;
    o->p = NULL;
}

static void run_cmd(struct worker *w, struct cmd *c) {
    switch (c->op) {
    case C_FREE: obj_free(&c->o, c->sel, "worker free"); break;
    case C_REALLOC:
        obj_realloc(&c->o, c->size, "worker realloc");
        if (c->o.p) keep(w, &c->o);
        break;
    case C_KEEP: verify(&c->o, "worker keep"); keep(w, &c->o); break;
    case C_ALLOC:
        for (unsigned i = 0; i < c->count; i++) {
            struct obj o;
            void *p = c->sel & 1 ? gm_calloc(1, c->size) : gm_malloc(c->size);
            check_new(p, c->size, 1, "worker malloc");
            obj_set(&o, p, c->size, 1, K_MALLOC);
            keep(w, &o);
        }
        break;
    case C_RETURN:
        while (w->nkept) give_back(&w->kept[--w->nkept]);
        break;
    case C_FREE_KEPT:
        while (w->nkept) obj_free(&w->kept[--w->nkept], c->sel + w->nkept, "worker free kept");
        break;
    }
}

static void *worker_main(void *arg) {
    struct worker *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->head == w->tail) pthread_cond_wait(&w->cv, &w->mu);
        struct cmd c = w->q[w->head % QCAP];
        w->busy = true;
        w->head++;
        pthread_mutex_unlock(&w->mu);
        if (c.op == C_EXIT) {
            /* exit with objects alive: their spans are handed to mcentral */
            if (c.sel & 1)
                while (w->nkept) give_back(&w->kept[--w->nkept]);
            else
                while (w->nkept) obj_free(&w->kept[--w->nkept], w->nkept, "worker exit");
            pthread_mutex_lock(&w->mu);
            w->busy = false;
            pthread_cond_broadcast(&w->cv);
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        run_cmd(w, &c);
        pthread_mutex_lock(&w->mu);
        w->busy = false;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

static struct worker *worker_start(unsigned i) {
    struct worker *w = &workers[i % NWORKERS];
    if (w->live) return w;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->head = w->tail = 0;
    w->busy = false;
    w->nkept = 0;
    if (pthread_create(&w->t, NULL, worker_main, w) != 0) DIE("pthread_create failed");
    w->live = true;
    return w;
}

static void post(struct worker *w, struct cmd *c) {
    pthread_mutex_lock(&w->mu);
    while (w->tail - w->head == QCAP) pthread_cond_wait(&w->cv, &w->mu);
    w->q[w->tail % QCAP] = *c;
    w->tail++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void worker_wait_idle(struct worker *w) {
    if (!w->live) return;
    pthread_mutex_lock(&w->mu);
    while (w->head != w->tail || w->busy) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void worker_stop(struct worker *w, uint8_t sel) {
    if (!w->live) return;
    struct cmd c = {.op = C_EXIT, .sel = sel};
    post(w, &c);
    pthread_join(w->t, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->live = false;
}

/* Returned objects go into free main slots; the rest are freed (remotely,
 * or into unowned spans). */
static void take_returns(uint8_t sel) {
    pthread_mutex_lock(&ret_mu);
    unsigned n = nreturned;
    nreturned = 0;
    pthread_mutex_unlock(&ret_mu);
    for (unsigned i = 0, s = 0; i < n; i++) {
        while (s < NSLOTS && slots[s].p) s++;
        if (s < NSLOTS && (sel + i) % 2)
            slots[s] = returned[i];
        else
            obj_free(&returned[i], sel + i, "main free returned");
    }
}

static void sync_all(uint8_t sel) {
    for (unsigned i = 0; i < NWORKERS; i++) worker_wait_idle(&workers[i]);
    take_returns(sel);
}

static void full_check(const char *when) {
    char why[512];
    if (heap_check(HEAP_CHECK_QUIESCENT, why, sizeof why) != 0) DIE("heap check (%s): %s", when, why);
}

/* ---- The program ------------------------------------------------------- */

enum {
    OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_ALIGNED, OP_FREE, OP_FREE_SIZED, OP_USABLE, OP_HANDOFF,
    OP_WORKER_ALLOC, OP_WORKER_RETURN, OP_THREAD_START, OP_THREAD_EXIT, OP_RELEASE, OP_LIMIT, OP_SYNC,
    OP_REALLOCARRAY, OP_BURST, OP_FREE_ALL, OP_ERRORS, OP_STATS, OP_WORKER_FREE, OP_MALLOC2, OP_FREE2,
    NUM_OPS
};

static struct obj *slot(struct in *in) { return &slots[u8(in) % NSLOTS]; }

static void op_errors(struct in *in) {
    uint8_t sel = u8(in);
    errno = 0;
    switch (sel % 6) {
    case 0:
        if (gm_malloc(SIZE_MAX - (sel >> 3)) || errno != ENOMEM) DIE("malloc(huge) did not fail with ENOMEM");
        break;
    case 1:
        if (gm_calloc(SIZE_MAX / 2, 3) || errno != ENOMEM) DIE("calloc overflow did not fail with ENOMEM");
        break;
    case 2:
        if (gm_aligned_alloc(24, 48) || errno != EINVAL) DIE("aligned_alloc(24) did not fail with EINVAL");
        break;
    case 3: {
        void *p = (void *)1;
        if (gm_posix_memalign(&p, 4, 10) != EINVAL || p != (void *)1) DIE("posix_memalign(4) did not fail");
        break;
    }
    case 4: {
        struct obj *o = slot(in);
        if (!o->p) break;
        if (gm_realloc(o->p, SIZE_MAX - 4096) || errno != ENOMEM) DIE("realloc(huge) did not fail");
        verify(o, "after a failed realloc");
        break;
    }
    case 5:
        if (gm_reallocarray(NULL, SIZE_MAX / 4, 8) || errno != ENOMEM) DIE("reallocarray overflow did not fail");
        break;
    }
}

static void op_burst(struct in *in) {
    static struct obj b[256];
    unsigned n = 1 + u8(in);
    size_t size = decode_size(in);
    uint8_t order = u8(in);
    if (size > 4096 && n > 8) n = 8 + n % 8; /* enough for span transitions, not megabytes */
    for (unsigned i = 0; i < n; i++) {
        void *p = gm_malloc(size);
        check_new(p, size, 1, "malloc (burst)");
        obj_set(&b[i], p, size, 1, K_MALLOC);
    }
    /* keep a few in slots, free the rest in some order */
    for (unsigned i = 0; i < n && (order & 8); i += 17) {
        struct obj *o = &slots[(order + i) % NSLOTS];
        obj_free(o, order, "burst slot");
        *o = b[i];
        b[i].p = NULL;
    }
    for (unsigned k = 0; k < n; k++) {
        unsigned half = (n + 1) / 2; /* order 2: even indices, then odd */
        unsigned i = order % 3 == 0 ? k : order % 3 == 1 ? n - 1 - k : k < half ? 2 * k : 2 * (k - half) + 1;
        obj_free(&b[i], order + k, "burst free");
    }
    for (unsigned i = 0; i < n; i++) obj_free(&b[i], 0, "burst leftovers");
}

static void op_stats(void) {
    struct gm_memstats st;
    gm_read_memstats(&st);
    if (st.heap_sys != st.heap_inuse + st.heap_idle) DIE("HeapSys != HeapInuse + HeapIdle");
    if (st.heap_objects != st.mallocs - st.frees) DIE("HeapObjects != Mallocs - Frees");
}

static void run(struct in *in) {
    while (in->n) {
        uint8_t op = u8(in) % NUM_OPS;
        switch (op) {
        case OP_MALLOC:
        case OP_MALLOC2: {
            struct obj *o = slot(in);
            size_t size = decode_size(in);
            obj_free(o, size, "malloc over slot");
            void *p = gm_malloc(size);
            check_new(p, size, 1, "malloc");
            if (size <= 32768 && gm_usable_size(p) != gm_good_size(size))
                DIE("usable size %zu of malloc(%zu) != good size %zu", gm_usable_size(p), size, gm_good_size(size));
            obj_set(o, p, size, 1, K_MALLOC);
            break;
        }
        case OP_CALLOC: {
            struct obj *o = slot(in);
            size_t n = 1 + u8(in) % 16, size = decode_size(in) / n;
            obj_free(o, 0, "calloc over slot");
            uint8_t *p = gm_calloc(n, size);
            check_new(p, n * size, 1, "calloc");
            for (size_t i = 0; i < n * size; i++)
                if (p[i]) DIE("calloc(%zu, %zu) = %p: byte %zu is %u", n, size, (void *)p, i, p[i]);
            obj_set(o, p, n * size, 1, K_MALLOC);
            break;
        }
        case OP_REALLOC: {
            struct obj *o = slot(in);
            obj_realloc(o, decode_size(in), "realloc");
            break;
        }
        case OP_REALLOCARRAY: {
            struct obj *o = slot(in);
            size_t n = 1 + u8(in) % 8, size = decode_size(in) / n;
            if (o->p) verify(o, "reallocarray");
            uint8_t *old = o->p;
            size_t keep = o->size < n * size ? o->size : n * size;
            uint8_t *q = gm_reallocarray(o->p, n, size);
            if (n * size == 0 && old) {
                o->p = NULL;
                break;
            }
            check_new(q, n * size, 1, "reallocarray");
            if (old && check_fill(q, keep, o->seed, o->size) != keep) DIE("reallocarray lost the contents");
            obj_set(o, q, n * size, 1, K_MALLOC);
            break;
        }
        case OP_ALIGNED: {
            struct obj *o = slot(in);
            uint8_t how = u8(in);
            size_t align = decode_align(in), size = decode_size(in);
            obj_free(o, how, "aligned over slot");
            void *p = NULL;
            if (how % 3 == 0) {
                p = gm_aligned_alloc(align, size);
            } else if (how % 3 == 1) {
                if (align < sizeof(void *)) align = sizeof(void *);
                if (gm_posix_memalign(&p, align, size) != 0) p = NULL;
            } else {
                p = gm_memalign(align, size);
            }
            check_new(p, size, align, "aligned allocation");
            obj_set(o, p, size, align, K_ALIGNED);
            break;
        }
        case OP_FREE:
        case OP_FREE2: {
            struct obj *o = slot(in);
            obj_free(o, 0, "free");
            break;
        }
        case OP_FREE_SIZED: {
            struct obj *o = slot(in);
            obj_free(o, o->kind == K_ALIGNED ? 2 : 1, "free_sized");
            break;
        }
        case OP_USABLE: {
            struct obj *o = slot(in);
            if (!o->p) break;
            verify(o, "usable size");
            size_t us = gm_usable_size(o->p);
            if (us < o->size) DIE("usable size %zu < %zu", us, o->size);
            /* the slack is the program's to write */
            memset(o->p + o->size, 0xA5, us - o->size);
            uint64_t seed = next_seed++;
            if (o->kind == K_MALLOC && o->sized_ok) {
                fill(o->p, o->size, seed);
            } else {
                fill(o->p, us, seed);
                o->size = us;
                o->sized_ok = false;
            }
            o->seed = seed;
            break;
        }
        case OP_HANDOFF: {
            struct obj *o = slot(in);
            struct worker *w = worker_start(u8(in));
            struct cmd c = {.op = (uint8_t)(u8(in) % 3), .sel = u8(in)};
            c.size = c.op == C_REALLOC ? decode_size(in) : 0;
            if (!o->p) break;
            c.o = *o;
            o->p = NULL;
            post(w, &c);
            break;
        }
        case OP_WORKER_ALLOC: {
            struct worker *w = worker_start(u8(in));
            struct cmd c = {.op = C_ALLOC, .sel = u8(in), .count = 1 + u8(in) % 48};
            c.size = decode_size(in);
            post(w, &c);
            break;
        }
        case OP_WORKER_RETURN: {
            struct worker *w = &workers[u8(in) % NWORKERS];
            if (!w->live) break;
            struct cmd c = {.op = C_RETURN};
            post(w, &c);
            break;
        }
        case OP_WORKER_FREE: {
            struct worker *w = &workers[u8(in) % NWORKERS];
            if (!w->live) break;
            struct cmd c = {.op = C_FREE_KEPT, .sel = u8(in)};
            post(w, &c);
            break;
        }
        case OP_THREAD_START: worker_start(u8(in)); break;
        case OP_THREAD_EXIT: {
            uint8_t i = u8(in);
            worker_stop(&workers[i % NWORKERS], i / NWORKERS);
            break;
        }
        case OP_RELEASE: gm_release_memory(); break;
        case OP_LIMIT: {
            static const uint64_t limits[] = {GM_NO_LIMIT, 4 << 20, 16 << 20, 64 << 20};
            gm_set_memory_limit(limits[u8(in) % 4]);
            break;
        }
        case OP_SYNC: {
            uint8_t sel = u8(in);
            sync_all(sel);
            if (sel & 4) op_stats();
            if (sel & 1) full_check("sync");
            break;
        }
        case OP_BURST: op_burst(in); break;
        case OP_FREE_ALL: {
            uint8_t sel = u8(in);
            for (unsigned i = 0; i < NSLOTS; i++) obj_free(&slots[i], sel + i, "free all");
            break;
        }
        case OP_ERRORS: op_errors(in); break;
        case OP_STATS: {
            struct gm_memstats st;
            gm_read_memstats(&st); /* racy with the workers: only exercised */
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct in in = {data, size};
    run(&in);
    /* End of input: free everything, stop the workers, check the heap. */
    sync_all(0);
    for (unsigned i = 0; i < NSLOTS; i++) obj_free(&slots[i], i, "end of input");
    for (unsigned i = 0; i < NWORKERS; i++) worker_stop(&workers[i], (uint8_t)(size + i));
    take_returns(1);
    for (unsigned i = 0; i < NSLOTS; i++) obj_free(&slots[i], i, "end of input (returned)");
    gm_set_memory_limit(GM_NO_LIMIT);
    full_check("end of input");
    return 0;
}

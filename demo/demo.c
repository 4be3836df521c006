/*
 * demo: an allocation-heavy program for `make demo`.
 *
 * Four phases that look like real programs: a string hash table (insert,
 * lookup, delete, reinsert), a binary search tree with random inserts and
 * deletes, threads passing messages that the receiver frees, and buffers
 * growing by realloc. Each phase checks its own result; the program prints
 * the time of each phase, a checksum (equal under every allocator), its
 * peak RSS and, when gomalloc is the allocator, gomalloc's counters.
 *
 * Usage: demo [scale]   (default 1)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gomalloc.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void die(const char *what) {
    fprintf(stderr, "demo: wrong result in %s\n", what);
    exit(1);
}

/* ---- 1. string hash table -------------------------------------------- */
struct entry {
    struct entry *next;
    uint64_t hash;
    char key[];
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static uint64_t phase_strings(long n) {
    size_t nb = 1u << 20;
    struct entry **tab = calloc(nb, sizeof *tab);
    uint64_t seed = 12345, sum = 0;
    char buf[256];
    long live = 0;
    for (long round = 0; round < 3; round++) {
        for (long i = 0; i < n; i++) {
            int len = 8 + (int)(rnd(&seed) % 120);
            for (int k = 0; k < len; k++) buf[k] = (char)('a' + rnd(&seed) % 26);
            buf[len] = 0;
            uint64_t h = hash_str(buf);
            struct entry *e = malloc(sizeof *e + (size_t)len + 1);
            e->hash = h;
            memcpy(e->key, buf, (size_t)len + 1);
            e->next = tab[h & (nb - 1)];
            tab[h & (nb - 1)] = e;
            live++;
        }
        /* delete every entry whose hash is odd */
        for (size_t b = 0; b < nb; b++) {
            struct entry **pp = &tab[b];
            while (*pp) {
                struct entry *e = *pp;
                if (e->hash & 1) {
                    if (hash_str(e->key) != e->hash) die("strings");
                    *pp = e->next;
                    sum += e->hash >> 40;
                    free(e);
                    live--;
                } else {
                    pp = &e->next;
                }
            }
        }
    }
    for (size_t b = 0; b < nb; b++) {
        struct entry *e = tab[b];
        while (e) {
            struct entry *next = e->next;
            sum += strlen(e->key);
            free(e);
            live--;
            e = next;
        }
    }
    free(tab);
    if (live) die("strings (leak)");
    return sum;
}

/* ---- 2. binary search tree -------------------------------------------- */
struct node {
    struct node *l, *r;
    uint64_t key;
    char payload[40];
};

static struct node *insert(struct node *t, struct node *n) {
    struct node **pp = &t, *root = t;
    while (*pp) pp = n->key < (*pp)->key ? &(*pp)->l : &(*pp)->r;
    *pp = n;
    return root ? root : n;
}

static struct node *remove_min(struct node *t, struct node **min) {
    struct node **pp = &t;
    while ((*pp)->l) pp = &(*pp)->l;
    *min = *pp;
    *pp = (*pp)->r;
    return t;
}

static void free_tree(struct node *t, uint64_t *sum) {
    while (t) {
        free_tree(t->l, sum);
        struct node *r = t->r;
        *sum += t->key & 0xffff;
        free(t);
        t = r;
    }
}

static uint64_t phase_tree(long n) {
    uint64_t seed = 777, sum = 0;
    struct node *t = NULL;
    for (long i = 0; i < n; i++) {
        struct node *x = malloc(sizeof *x);
        x->l = x->r = NULL;
        x->key = rnd(&seed);
        x->payload[0] = (char)x->key;
        t = insert(t, x);
        if (i % 3 == 2) {
            struct node *m;
            t = remove_min(t, &m);
            if (m->payload[0] != (char)m->key) die("tree");
            sum += m->key >> 48;
            free(m);
        }
    }
    free_tree(t, &sum);
    return sum;
}

/* ---- 3. threads passing messages ------------------------------------ */
#define QCAP 1024
struct queue {
    uint64_t seed;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void *items[QCAP];
    int head, tail, count, done;
};

struct msg {
    uint32_t len;
    uint32_t check;
    char body[];
};

static void *producer(void *arg) {
    struct queue *q = arg;
    uint64_t seed = q->seed;
    for (long i = 0; i < 400000; i++) {
        uint32_t len = 16 + (uint32_t)(rnd(&seed) % 2000);
        struct msg *m = malloc(sizeof *m + len);
        m->len = len;
        memset(m->body, (int)(len & 0xff), len);
        m->check = len * 2654435761u;
        pthread_mutex_lock(&q->mu);
        while (q->count == QCAP) pthread_cond_wait(&q->cv, &q->mu);
        q->items[q->tail] = m;
        q->tail = (q->tail + 1) % QCAP;
        q->count++;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void *consumer(void *arg) {
    struct queue *q = arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (q->count == 0 && !q->done) pthread_cond_wait(&q->cv, &q->mu);
        if (q->count == 0) {
            pthread_mutex_unlock(&q->mu);
            break;
        }
        struct msg *m = q->items[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        if (m->check != m->len * 2654435761u || (unsigned char)m->body[m->len - 1] != (m->len & 0xff))
            die("threads");
        sum += m->len;
        free(m);
    }
    return (void *)(uintptr_t)sum;
}

static uint64_t phase_threads(void) {
    struct queue q[2];
    pthread_t p[2], c[2];
    uint64_t sum = 0;
    for (int i = 0; i < 2; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].seed = 1000 + (uint64_t)i;
        pthread_mutex_init(&q[i].mu, NULL);
        pthread_cond_init(&q[i].cv, NULL);
        pthread_create(&p[i], NULL, producer, &q[i]);
        pthread_create(&c[i], NULL, consumer, &q[i]);
    }
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(p[i], NULL);
        pthread_join(c[i], &r);
        sum += (uintptr_t)r;
    }
    return sum;
}

/* ---- 4. growing buffers ------------------------------------------------ */
static uint64_t phase_realloc(long n) {
    uint64_t seed = 99, sum = 0;
    enum { NBUF = 256 };
    char *buf[NBUF] = {0};
    size_t len[NBUF] = {0};
    for (long i = 0; i < n; i++) {
        int b = (int)(rnd(&seed) % NBUF);
        size_t add = 1 + rnd(&seed) % 300;
        char *nb = realloc(buf[b], len[b] + add);
        if (!nb) die("realloc");
        memset(nb + len[b], (int)(b & 0x7f), add);
        buf[b] = nb;
        len[b] += add;
        if (len[b] > 200000) {
            if (buf[b][len[b] - 1] != (char)(b & 0x7f) || buf[b][0] != (char)(b & 0x7f)) die("realloc");
            sum += len[b];
            free(buf[b]);
            buf[b] = NULL;
            len[b] = 0;
        }
    }
    for (int b = 0; b < NBUF; b++) {
        sum += len[b];
        free(buf[b]);
    }
    return sum;
}

static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) v = atol(line + 6);
    if (f) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale < 1) scale = 1;
    double t0 = now(), t;
    uint64_t sum = 0;
    t = now();
    sum += phase_strings(400000 * scale);
    printf("  strings  %7.3f s  %016llx\n", now() - t, (unsigned long long)sum);
    t = now();
    sum += phase_tree(1500000 * scale);
    printf("  tree     %7.3f s  %016llx\n", now() - t, (unsigned long long)sum);
    t = now();
    for (long i = 0; i < scale; i++) sum += phase_threads();
    printf("  threads  %7.3f s  %016llx\n", now() - t, (unsigned long long)sum);
    t = now();
    sum += phase_realloc(2000000 * scale);
    printf("  realloc  %7.3f s\n", now() - t);
    printf("  total    %7.3f s   peak RSS %ld KiB   checksum %016llx\n", now() - t0, peak_rss_kib(),
           (unsigned long long)sum);
    void (*read_stats)(struct gm_memstats *) = (void (*)(struct gm_memstats *))dlsym(RTLD_DEFAULT, "gm_read_memstats");
    if (read_stats) {
        struct gm_memstats st;
        read_stats(&st);
        printf("  gomalloc: %llu mallocs, %llu frees, %llu live objects, %.1f MiB live, heap %.1f MiB "
               "(%.1f MiB in use, %.1f MiB released), metadata %.1f MiB\n",
               (unsigned long long)st.mallocs, (unsigned long long)st.frees, (unsigned long long)st.heap_objects,
               st.heap_alloc / 1048576.0, st.heap_sys / 1048576.0, st.heap_inuse / 1048576.0,
               st.heap_released / 1048576.0, (st.sys - st.heap_sys) / 1048576.0);
    }
    return 0;
}

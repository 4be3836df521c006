/*
 * A statically linked program (gcc -static ... libgomalloc.a): gomalloc must
 * replace glibc's malloc at link time, in threads and across fork, with no
 * dynamic loader involved.
 */
#include "testlib.h"

#include <pthread.h>

#include <malloc.h>

#include "gomalloc.h"

TEST(malloc_is_gomalloc) {
    struct gm_memstats before, after;
    gm_read_memstats(&before);
    void *p = malloc(20);
    CHECK(p != NULL);
    /* glibc would give 24 usable bytes; gomalloc's class for 20 is 32 */
    CHECKF(malloc_usable_size(p) == 32, "usable %zu", malloc_usable_size(p));
    CHECK(gm_usable_size(p) == 32);
    gm_read_memstats(&after);
    CHECK(after.mallocs > before.mallocs);
    free(p);
    char *s = strdup("hello from a static binary"); /* libc-internal allocation */
    CHECK(s && gm_usable_size(s) >= 27);
    free(s);
}

static void *worker(void *arg) {
    uintptr_t sum = 0;
    for (int i = 0; i < 100000; i++) {
        char *p = malloc(1 + i % 3000);
        p[0] = (char)i;
        sum += (uintptr_t)p[0];
        free(p);
    }
    return (void *)sum;
}

TEST(threads_and_fork) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        void *q = malloc(1000);
        free(q);
        _exit(worker(NULL) != NULL ? 0 : 1);
    }
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

TEST_MAIN()

/*
 * A statically linked program (gcc -static ... libgomalloc.a): gomalloc must
 * replace glibc's malloc at link time, in threads and across fork, with no
 * dynamic loader involved. With no other allocator in the process,
 * GOMALLOC_FOREIGN=pass has nowhere to pass a foreign pointer: it is
 * reported as misuse.
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

/* Runs in a re-executed copy of this program with GOMALLOC_FOREIGN=pass
 * (options are read at the first allocation, so a fork would not do). */
static char not_heap[64];
static void *volatile launder;
static int free_foreign_child(void) {
    launder = not_heap;
    free(launder);
    return 3; /* not reached: the report aborts */
}

TEST(foreign_pass_without_next_allocator) {
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        char *argv[] = {"static_link", "--free-foreign", NULL};
        char *envp[] = {"GOMALLOC_FOREIGN=pass", NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    close(pipefd[1]);
    char err[1024];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof err - 1 && (n = read(pipefd[0], err + len, sizeof err - 1 - len)) > 0) len += (size_t)n;
    err[len] = 0;
    close(pipefd[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    char want[256];
    /* A static binary is not position independent: not_heap has the same
     * address in the re-executed copy. */
    snprintf(want, sizeof want,
             "gomalloc: free(%p): pointer not allocated by gomalloc (GOMALLOC_FOREIGN=pass: no next allocator)\n",
             (void *)not_heap);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x, stderr: %s", status, err);
    CHECKF(strcmp(err, want) == 0, "stderr: %s want: %s", err, want);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--free-foreign") == 0) return free_foreign_child();
    return tl_main(argc, argv);
}

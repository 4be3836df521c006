/*
 * The allocator at the edges of a program's life, run under LD_PRELOAD:
 * before main (constructors), inside the dynamic loader (dlopen, dlsym,
 * dlerror allocate), in pthread key destructors that run after gomalloc has
 * handed the thread's cache back, in atexit handlers, and after fork in a
 * child that never calls exec.
 */
#include "testlib.h"

#include <malloc.h>
#include <pthread.h>

static char *early;
static size_t early_usable;

__attribute__((constructor(101))) static void before_main(void) {
    early = malloc(1000);
    if (early) {
        memset(early, 'e', 1000);
        early_usable = malloc_usable_size(early);
    }
}

TEST(allocation_in_constructor) {
    CHECK(early != NULL);
    CHECK(early_usable >= 1000);
    for (int i = 0; i < 1000; i++) CHECK(early[i] == 'e');
    free(early);
}

TEST(allocation_inside_the_dynamic_loader) {
    for (int i = 0; i < 20; i++) {
        void *h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        CHECK(h != NULL);
        CHECK(dlsym(h, "cos") != NULL);
        CHECK(dlsym(h, "no_such_symbol_here") == NULL);
        const char *e = dlerror(); /* dlerror allocates its message */
        CHECK(e != NULL);
        dlclose(h);
        CHECK(dlopen("/nonexistent/libnothing.so", RTLD_NOW) == NULL);
        CHECK(dlerror() != NULL);
    }
}

static pthread_key_t late_key;
static volatile int late_ok;

static void late_destructor(void *arg) {
    /* Runs at thread exit, after the allocator's own key destructor. */
    free(arg);
    char *p = malloc(300);
    char *q = calloc(10, 100);
    if (p && q && q[999] == 0) late_ok++;
    free(p);
    free(q);
}

static void *thread_with_late_destructor(void *arg) {
    (void)arg;
    pthread_setspecific(late_key, malloc(64));
    void *x = malloc(100);
    free(x);
    return NULL;
}

TEST(allocation_in_thread_destructors) {
    CHECK(pthread_key_create(&late_key, late_destructor) == 0);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, thread_with_late_destructor, NULL) == 0);
        CHECK(pthread_join(t, NULL) == 0);
    }
    CHECKF(late_ok == 50, "late destructors that allocated: %d", late_ok);
}

static void at_exit_handler(void) {
    char *p = malloc(5000);
    if (!p) _exit(3);
    memset(p, 1, 5000);
    free(p);
    void *q = realloc(NULL, 100);
    free(q);
    printf("PASS allocation_in_atexit\n");
    fflush(stdout);
}

TEST(atexit_registered) { CHECK(atexit(at_exit_handler) == 0); }

TEST(fork_child_allocates_without_exec) {
    void *keep = malloc(123);
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            char *p = malloc(50000);
            free(keep); /* memory allocated by the parent */
            for (int k = 0; k < 1000; k++) free(malloc((size_t)k * 7));
            free(p);
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
    }
    free(keep);
}

TEST(gomalloc_is_loaded) {
    if (getenv("GM_EXPECT") && !strcmp(getenv("GM_EXPECT"), "0")) return;
    CHECK(tl_gomalloc_active());
}

TEST_MAIN()

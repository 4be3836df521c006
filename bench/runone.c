/*
 * runone: run one benchmark process and measure it.
 *
 *   runone TIMEOUT_SECONDS OUTFILE ERRFILE PROGRAM [ARGS...]
 *
 * Forks, runs PROGRAM with stdin from /dev/null and stdout/stderr to OUTFILE
 * and ERRFILE, waits for it with wait4() and prints one line:
 *     <status> <seconds> <maxrss_kib> <cpu_seconds>
 * status: the exit code, or -N when killed by signal N, or "timeout" when it
 * ran longer than TIMEOUT_SECONDS (then it is SIGKILLed). seconds: wall time
 * from fork to wait4's return (CLOCK_MONOTONIC). maxrss_kib: ru_maxrss.
 * cpu_seconds: ru_utime + ru_stime of the child, all threads.
 *
 * Why a separate, statically linked launcher: Linux counts the RSS high-water
 * mark of the process image that calls exec into the new program's ru_maxrss,
 * so a child of the Python runner would report at least the runner's ~17 MiB.
 * This launcher is static (ignores LD_PRELOAD itself) and tiny, so the floor
 * is a few hundred KiB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child > 0) kill(child, SIGKILL);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fputs("usage: runone TIMEOUT OUTFILE ERRFILE PROGRAM [ARGS...]\n", stderr);
        return 2;
    }
    unsigned timeout = (unsigned)strtoul(argv[1], NULL, 10);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int err = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (out < 0 || err < 0 || in < 0) { perror("runone: open"); return 2; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    child = fork();
    if (child < 0) { perror("runone: fork"); return 2; }
    if (child == 0) {
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execvp(argv[4], argv + 4);
        dprintf(2, "runone: cannot run %s: %s\n", argv[4], strerror(errno));
        _exit(127);
    }
    if (timeout) alarm(timeout);
    int status;
    struct rusage ru;
    pid_t r;
    while ((r = wait4(child, &status, 0, &ru)) < 0 && errno == EINTR) {}
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    if (r < 0) { perror("runone: wait4"); return 2; }
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (timed_out) printf("timeout");
    else if (WIFSIGNALED(status)) printf("-%d", WTERMSIG(status));
    else printf("%d", WEXITSTATUS(status));
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    printf(" %.6f %ld %.6f\n", secs, ru.ru_maxrss, cpu);
    return 0;
}

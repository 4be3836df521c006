/*
 * allocinfo: which allocator is serving malloc in this process, and its
 * version. The runner starts it under each LD_PRELOAD to check that the
 * preload took effect (the library that defines malloc is named) and to
 * record versions. Prints one line: "<path of malloc's library>\t<version>".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    Dl_info info;
    void *(*m)(size_t) = malloc;
    const char *lib = "?";
    if (dladdr((void *)m, &info) && info.dli_fname) lib = info.dli_fname;
    char ver[128] = "";
    const char *(*gm)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "gm_version");
    int (*mi)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "mi_version");
    int (*je)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    const char *(*tc)(int *, int *, const char **) =
        (const char *(*)(int *, int *, const char **))dlsym(RTLD_DEFAULT, "tc_version");
    if (gm) {
        snprintf(ver, sizeof ver, "%s", gm());
    } else if (mi) {
        int v = mi();
        snprintf(ver, sizeof ver, "mimalloc %d.%d.%d", v / 100, (v / 10) % 10, v % 10);
    } else if (je) {
        const char *v = NULL;
        size_t len = sizeof v;
        if (je("version", &v, &len, NULL, 0) == 0 && v) snprintf(ver, sizeof ver, "jemalloc %s", v);
    } else if (tc) {
        snprintf(ver, sizeof ver, "%s", tc(NULL, NULL, NULL));
    } else {
        snprintf(ver, sizeof ver, "glibc %s", gnu_get_libc_version());
    }
    printf("%s\t%s\n", lib, ver);
    return 0;
}

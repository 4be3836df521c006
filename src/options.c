/*
 * options.c: the GOMALLOC_* option table.
 *
 * Go counterpart: the GODEBUG table in runtime/runtime1.go and GOMEMLIMIT
 * parsing (parseByteCount). Every option is one row of `table`: name, kind,
 * where the value goes, and its help text; README.md documents the same
 * table. Options are read from environ once, at the allocator's first use,
 * without getenv copies or allocation; a GOMALLOC_ variable that matches no
 * row gets a warning, so a misspelling does not go unnoticed.
 */
#include "options.h"

#include <string.h>

#include "os.h"
#include "print.h"

extern char **environ;

struct options options = {
    .linear_reserve = 64ull << 30,
    .scavenge_percent = 1,
    .hugepages_from = HUGEPAGES_AUTO_FROM,
};

enum kind { BOOL, STATS, ARENA, ON_ERROR, FOREIGN, BYTES, SCAVENGE, PERCENT, ON_OOM, FAULT, HUGEPAGES };

struct option_row {
    const char *name; /* without the GOMALLOC_ prefix */
    enum kind kind;
    void *value;
    const char *help;
};

static const struct option_row table[] = {
    {"VERBOSE", BOOL, &options.verbose, "print the effective options and notable events"},
    {"STATS", STATS, &options.stats, "1: print statistics to stderr at exit; json:FILE: write JSON"},
    {"HARDDECOMMIT", BOOL, &options.harddecommit,
     "make released (Prepared) memory inaccessible, so stray touches fault"},
    {"ARENA", ARENA, &options.arena_linear,
     "sparse (default): 64 MiB arenas anywhere; linear: one contiguous reservation"},
    {"ARENA_RESERVE", BYTES, &options.linear_reserve,
     "address space reserved up front by GOMALLOC_ARENA=linear (default 64GiB)"},
    {"ON_ERROR", ON_ERROR, &options.on_error_warn,
     "abort (default): misuse such as a double free aborts; warn: report and continue"},
    {"FOREIGN", FOREIGN, &options.foreign_pass,
     "report (default): a pointer outside gomalloc's heap is misuse; pass: give it to the next allocator"},
    {"SCAVENGE", SCAVENGE, &options.scavenge,
     "background (default): a paced thread returns free pages; inline: the freeing threads do; off"},
    {"SCAVENGE_PERCENT", PERCENT, &options.scavenge_percent,
     "CPU the scavenger may use, in percent of one CPU (default 1)"},
    {"MEMLIMIT", BYTES, &options.memlimit, "soft memory limit in Go's GOMEMLIMIT syntax (e.g. 512MiB); 0: none"},
    {"MEMLIMIT_HARD", BOOL, &options.memlimit_hard,
     "1: an allocation that would pass GOMALLOC_MEMLIMIT fails with ENOMEM"},
    {"ON_OOM", ON_OOM, &options.on_oom_abort,
     "null (default): a failed allocation returns NULL with ENOMEM; abort: report it and abort"},
    {"SECURE", BOOL, &options.secure,
     "1: hardened mode: poisoned frees checked on reuse, random allocation order, random heap base, guarded metadata"},
    {"HUGEPAGES", HUGEPAGES, &options.hugepages_from,
     "auto (default): what the heap grows by past 8 MiB mapped asks for transparent huge pages; "
     "1: all heap memory; 0: none; SIZE (e.g. 32MiB): past SIZE"},
    {"FAULT", FAULT, &options.fault,
     "testing: KIND:N fails the N-th OS call of KIND (alloc, reserve, map, used, unused, any); "
     "KIND:N+ that and every later one; KIND:0 counts only; KIND:delay=US every call of KIND sleeps US us first"},
};

/* KIND:N, KIND:N+ or KIND:delay=US (see the table). */
static int parse_fault(const char *val) {
    const char *colon = strchr(val, ':');
    if (!colon) return -1;
    int kind = -1;
    for (int k = 0; k <= OS_CALLS; k++)
        if (strlen(os_call_name[k]) == (size_t)(colon - val) && !strncmp(val, os_call_name[k], (size_t)(colon - val)))
            kind = k;
    if (kind < 0) return -1;
    const char *p = colon + 1;
    int delay = !strncmp(p, "delay=", 6);
    if (delay) p += 6;
    uint64_t n = 0;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10) return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    int repeat = !delay && *p == '+';
    if (p[repeat] != 0) return -1;
    if (delay && n > 1000000) return -1; /* at most 1 s */
    options.fault = 1;
    options.fault_kind = kind;
    options.fault_n = delay ? 0 : n;
    options.fault_repeat = repeat;
    options.fault_delay_us = delay ? (uint32_t)n : 0;
    return 0;
}

int parse_bytes(const char *s, uint64_t *out) {
    if (!s || !*s) return -1;
    uint64_t whole = 0, frac = 0, fracdiv = 1;
    const char *p = s;
    if (*p < '0' || *p > '9') return -1;
    while (*p >= '0' && *p <= '9') {
        uint64_t next = whole * 10 + (uint64_t)(*p - '0');
        if (next / 10 != whole) return -1;
        whole = next;
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (fracdiv < 1000000000ull) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                fracdiv *= 10;
            }
            p++;
        }
    }
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    for (unsigned i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].suffix) != 0) continue;
        unsigned sh = units[i].shift;
        if (sh && whole > (UINT64_MAX >> sh)) return -1;
        *out = (whole << sh) + ((frac << sh) / fracdiv);
        return 0;
    }
    return -1;
}

static void set_option(const struct option_row *row, const char *val) {
    int *iv = row->value;
    int ok = 1;
    switch (row->kind) {
    case BOOL:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "on"))
            *iv = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "off") || !*val)
            *iv = 0;
        else
            ok = 0;
        break;
    case STATS:
        if (!strncmp(val, "json:", 5) && val[5]) {
            *iv = STATS_JSON;
            options.stats_file = val + 5;
        } else if (!strcmp(val, "json")) {
            *iv = STATS_JSON;
        } else if (!strcmp(val, "1") || !strcmp(val, "text")) {
            *iv = STATS_TEXT;
        } else if (!strcmp(val, "0") || !*val) {
            *iv = STATS_OFF;
        } else {
            ok = 0;
        }
        break;
    case ARENA:
        if (!strcmp(val, "linear"))
            *iv = 1;
        else if (!strcmp(val, "sparse"))
            *iv = 0;
        else
            ok = 0;
        break;
    case ON_ERROR:
        if (!strcmp(val, "warn"))
            *iv = 1;
        else if (!strcmp(val, "abort"))
            *iv = 0;
        else
            ok = 0;
        break;
    case FOREIGN:
        if (!strcmp(val, "pass"))
            *iv = 1;
        else if (!strcmp(val, "report"))
            *iv = 0;
        else
            ok = 0;
        break;
    case BYTES:
        ok = parse_bytes(val, (uint64_t *)row->value) == 0;
        break;
    case SCAVENGE:
        if (!strcmp(val, "background") || !strcmp(val, "1") || !strcmp(val, "on"))
            *iv = 0;
        else if (!strcmp(val, "inline"))
            *iv = 1;
        else if (!strcmp(val, "off") || !strcmp(val, "0"))
            *iv = 2;
        else
            ok = 0;
        break;
    case PERCENT: {
        uint64_t v;
        ok = parse_bytes(val, &v) == 0 && v >= 1 && v <= 100;
        if (ok) *(unsigned *)row->value = (unsigned)v;
        break;
    }
    case ON_OOM:
        if (!strcmp(val, "abort"))
            *iv = 1;
        else if (!strcmp(val, "null") || !*val)
            *iv = 0;
        else
            ok = 0;
        break;
    case FAULT:
        if (!*val || !strcmp(val, "off") || !strcmp(val, "0"))
            options.fault = 0;
        else
            ok = parse_fault(val) == 0;
        break;
    case HUGEPAGES: {
        uint64_t *from = row->value;
        if (!strcmp(val, "auto"))
            *from = HUGEPAGES_AUTO_FROM;
        else if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "on"))
            *from = 0;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "off") || !*val)
            *from = UINT64_MAX;
        else
            ok = parse_bytes(val, from) == 0;
        break;
    }
    }
    if (!ok) print_err("gomalloc: GOMALLOC_%s=%s: invalid value (ignored)\n", row->name, val);
}

void options_init(void) {
    static int done;
    if (done) return;
    done = 1;
    if (!environ) return;
    for (char **e = environ; *e; e++) {
        const char *s = *e;
        if (strncmp(s, "GOMALLOC_", 9) != 0) continue;
        const char *name = s + 9;
        const char *eq = strchr(name, '=');
        if (!eq) continue;
        size_t len = (size_t)(eq - name);
        const struct option_row *row = NULL;
        for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {
            if (strlen(table[i].name) == len && !strncmp(table[i].name, name, len)) {
                row = &table[i];
                break;
            }
        }
        if (!row) {
            char nm[64];
            size_t n = len < sizeof nm - 1 ? len : sizeof nm - 1;
            memcpy(nm, name, n);
            nm[n] = 0;
            print_err("gomalloc: unknown option GOMALLOC_%s (ignored; see README.md)\n", nm);
            continue;
        }
        set_option(row, eq + 1);
    }
}

void options_print(int fd) {
    char buf[1024];
    struct writer w;
    writer_init(&w, buf, sizeof buf, fd);
    writer_puts(&w, "gomalloc: options:\n");
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {
        const struct option_row *row = &table[i];
        writer_printf(&w, "gomalloc:   GOMALLOC_%-14s = ", row->name);
        int v = *(int *)row->value;
        switch (row->kind) {
        case BOOL:
            writer_puts(&w, v ? "1" : "0");
            break;
        case STATS:
            writer_puts(&w, v == STATS_OFF ? "0" : v == STATS_TEXT ? "1" : "json");
            if (v == STATS_JSON && options.stats_file) writer_printf(&w, ":%s", options.stats_file);
            break;
        case ARENA:
            writer_puts(&w, v ? "linear" : "sparse");
            break;
        case ON_ERROR:
            writer_puts(&w, v ? "warn" : "abort");
            break;
        case FOREIGN:
            writer_puts(&w, v ? "pass" : "report");
            break;
        case BYTES:
            writer_bytes(&w, (unsigned long long)*(uint64_t *)row->value);
            break;
        case SCAVENGE:
            writer_puts(&w, v == 0 ? "background" : v == 1 ? "inline" : "off");
            break;
        case PERCENT:
            writer_printf(&w, "%u", *(unsigned *)row->value);
            break;
        case ON_OOM:
            writer_puts(&w, v ? "abort" : "null");
            break;
        case FAULT:
            if (!v)
                writer_puts(&w, "off");
            else
                writer_printf(&w, "%s:%llu%s", os_call_name[options.fault_kind], (unsigned long long)options.fault_n,
                              options.fault_repeat ? "+" : "");
            break;
        case HUGEPAGES: {
            uint64_t from = *(uint64_t *)row->value;
            if (from == UINT64_MAX)
                writer_puts(&w, "0");
            else if (from == 0)
                writer_puts(&w, "1");
            else {
                if (from == HUGEPAGES_AUTO_FROM) writer_puts(&w, "auto: ");
                writer_bytes(&w, (unsigned long long)from);
            }
            break;
        }
        }
        writer_printf(&w, "  (%s)\n", row->help);
    }
    writer_flush(&w);
}

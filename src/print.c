/*
 * print.c: non-allocating formatted output, fatal errors, misuse reports.
 *
 * Go counterpart: runtime/print.go (print without allocation) and
 * runtime/panic.go (throw). See print.h for the contract. The writer keeps
 * text in a caller-supplied buffer (usually on the stack) and flushes it
 * with write(2); errno is preserved across every call here, because free()
 * must not change errno even when it reports an error in warn mode.
 */
#include "print.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

void writer_init(struct writer *w, char *buf, size_t cap, int fd) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->fd = fd;
    if (cap) buf[0] = 0;
}

void writer_flush(struct writer *w) {
    if (w->fd >= 0 && w->len) {
        write_all(w->fd, w->buf, w->len);
        w->len = 0;
    }
    if (w->cap) w->buf[w->len < w->cap ? w->len : w->cap - 1] = 0;
}

static void put(struct writer *w, char c) {
    if (w->len + 1 >= w->cap) {
        if (w->fd < 0) return; /* truncate */
        writer_flush(w);
    }
    w->buf[w->len++] = c;
    w->buf[w->len] = 0;
}

void writer_puts(struct writer *w, const char *s) {
    if (!s) s = "(null)";
    while (*s) put(w, *s++);
}

static void put_uint(struct writer *w, unsigned long long v, unsigned base, int width, char pad) {
    char tmp[32];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (n < width) tmp[n++] = pad;
    while (n) put(w, tmp[--n]);
}

void writer_bytes(struct writer *w, unsigned long long v) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (v < 1024) {
        put_uint(w, v, 10, 0, ' ');
        writer_puts(w, " B");
        return;
    }
    int u = 0;
    unsigned long long whole = v, scale = 1;
    while (whole >= 1024 && u < 4) {
        whole /= 1024;
        scale *= 1024;
        u++;
    }
    unsigned long long tenths = (v % scale) * 10 / scale;
    put_uint(w, whole, 10, 0, ' ');
    put(w, '.');
    put_uint(w, tenths, 10, 0, ' ');
    put(w, ' ');
    writer_puts(w, units[u]);
}

void writer_vprintf(struct writer *w, const char *fmt, va_list ap) {
    int saved = errno;
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(w, *f);
            continue;
        }
        f++;
        int width = 0, left = 0;
        char pad = ' ';
        if (*f == '-') {
            left = 1;
            f++;
        }
        if (*f == '0') {
            pad = '0';
            f++;
        }
        while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t */
        if (*f == 'l') {
            lng = 1;
            f++;
            if (*f == 'l') {
                lng = 2;
                f++;
            }
        } else if (*f == 'z') {
            lng = 3;
            f++;
        }
        switch (*f) {
        case 'd':
        case 'i': {
            long long v = lng == 0 ? va_arg(ap, int)
                          : lng == 1 ? va_arg(ap, long)
                          : lng == 2 ? va_arg(ap, long long)
                                     : (long long)va_arg(ap, ptrdiff_t);
            size_t start = w->len;
            if (v < 0) {
                put(w, '-');
                put_uint(w, (unsigned long long)(-(v + 1)) + 1, 10, left ? 0 : width, pad);
            } else {
                put_uint(w, (unsigned long long)v, 10, left ? 0 : width, pad);
            }
            while (left && w->len - start < (size_t)width) put(w, ' ');
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = lng == 0 ? va_arg(ap, unsigned)
                                   : lng == 1 ? va_arg(ap, unsigned long)
                                   : lng == 2 ? va_arg(ap, unsigned long long)
                                              : va_arg(ap, size_t);
            size_t start = w->len;
            put_uint(w, v, *f == 'x' ? 16 : 10, left ? 0 : width, pad);
            while (left && w->len - start < (size_t)width) put(w, ' ');
            break;
        }
        case 'p':
            writer_puts(w, "0x");
            put_uint(w, (uintptr_t)va_arg(ap, void *), 16, 0, ' ');
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            size_t n = s ? strlen(s) : 6;
            if (!left)
                for (size_t i = n; i < (size_t)width; i++) put(w, ' ');
            writer_puts(w, s);
            if (left)
                for (size_t i = n; i < (size_t)width; i++) put(w, ' ');
            break;
        }
        case 'c':
            put(w, (char)va_arg(ap, int));
            break;
        case '%':
            put(w, '%');
            break;
        case 0:
            f--;
            break;
        default:
            put(w, '%');
            put(w, *f);
        }
    }
    errno = saved;
}

void writer_printf(struct writer *w, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    writer_vprintf(w, fmt, ap);
    va_end(ap);
}

size_t format_buf(char *buf, size_t cap, const char *fmt, ...) {
    struct writer w;
    writer_init(&w, buf, cap, -1);
    va_list ap;
    va_start(ap, fmt);
    writer_vprintf(&w, fmt, ap);
    va_end(ap);
    return w.len;
}

void print_err(const char *fmt, ...) {
    int saved = errno;
    char buf[512];
    struct writer w;
    writer_init(&w, buf, sizeof buf, 2);
    va_list ap;
    va_start(ap, fmt);
    writer_vprintf(&w, fmt, ap);
    va_end(ap);
    writer_flush(&w);
    errno = saved;
}

void throw(const char *fmt, ...) {
    char buf[512];
    struct writer w;
    writer_init(&w, buf, sizeof buf, 2);
    writer_puts(&w, "gomalloc: fatal error: ");
    va_list ap;
    va_start(ap, fmt);
    writer_vprintf(&w, fmt, ap);
    va_end(ap);
    writer_puts(&w, "\n");
    writer_flush(&w);
    abort();
}

void report_misuse(const char *op, const void *ptr, const char *what) {
    int saved = errno;
    int warn = options.on_error_warn;
    print_err("gomalloc: %s(%p): %s%s\n", op, ptr, what, warn ? " (ignored)" : "");
    if (!warn) abort();
    errno = saved;
}

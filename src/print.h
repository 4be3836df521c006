/*
 * print.h: the library's only way to write text.
 *
 * Owns: a small printf-like formatter that writes into a caller's buffer or
 * straight to a file descriptor with write(2); fatal errors (throw) and
 * misuse reports (bad free, double free, ...).
 * Go counterpart: runtime/print.go, runtime/panic.go (throw).
 *
 * Nothing here allocates, takes a lock or touches stdio, so it is safe in
 * any state of the allocator, including with the heap lock held.
 *
 * Formats: %s %c %d %i %u %x %p %% with the length modifiers l, ll, z;
 * writer_bytes prints a byte count in a readable unit.
 */
#ifndef GOMALLOC_PRINT_H
#define GOMALLOC_PRINT_H

#include <stdarg.h>
#include <stddef.h>

/* Non-allocating output buffer. */
struct writer {
    char *buf;
    size_t cap;
    size_t len;
    int fd; /* flush target when buf fills; -1: truncate instead */
};

void writer_init(struct writer *w, char *buf, size_t cap, int fd);
void writer_puts(struct writer *w, const char *s);
void writer_printf(struct writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void writer_vprintf(struct writer *w, const char *fmt, va_list ap);
void writer_flush(struct writer *w);
/* A byte count in a readable unit: "512 B", "1.5 KiB", "12.0 MiB". */
void writer_bytes(struct writer *w, unsigned long long n);

/* Format into buf (always NUL-terminated); returns the length. */
size_t format_buf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Write a formatted message to fd 2. */
void print_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Internal invariant broken: print "gomalloc: fatal error: ..." and abort. */
void throw(const char *fmt, ...) __attribute__((noreturn, cold, format(printf, 1, 2)));

/* A caller's misuse of the API: one line naming the operation, the pointer
 * and what is wrong,
 *     gomalloc: OP(0xPTR): WHAT
 * then abort(); with GOMALLOC_ON_ERROR=warn the line ends in " (ignored)"
 * and the call returns (the caller ignores the operation). */
void report_misuse(const char *op, const void *ptr, const char *what) __attribute__((cold));

/* The WHAT of every report (README.md, "Misuse", lists them; the tests in
 * tests/misuse*.c match them exactly). */
#define MISUSE_NOT_OURS "pointer not allocated by gomalloc"
#define MISUSE_UNUSED_HEAP "pointer not allocated by gomalloc (unused heap pages)"
#define MISUSE_NO_NEXT "pointer not allocated by gomalloc (GOMALLOC_FOREIGN=pass: no next allocator)"
#define MISUSE_FREED_MEMORY "pointer into freed memory"
#define MISUSE_DOUBLE_FREE "double free (object already freed)"
#define MISUSE_DOUBLE_FREE_REMOTE "double free (object already freed by another thread)"
#define MISUSE_DOUBLE_FREE_LATE "double free (object already freed; found later by the thread owning its span)"
#define MISUSE_USE_AFTER_FREE "use after free (object already freed)"
#define MISUSE_PAST_LAST "invalid pointer (past the last object of its span)"
#define MISUSE_INTERIOR_FMT "interior pointer (%zu bytes into the %zu-byte object at %p)"
#define MISUSE_SIZE_FMT "size %zu does not match the allocation (usable size %zu)"
#define MISUSE_WRITE_AFTER_FREE_FMT "write after free (byte %zu of the free %zu-byte object was modified)"
#define MISUSE_SIZE_ALIGN_FMT "size %zu and alignment %zu do not match the allocation (usable size %zu)"

#endif /* GOMALLOC_PRINT_H */

/*
 * foreign.h: pointers gomalloc did not allocate, under GOMALLOC_FOREIGN=pass
 * (interface of foreign.c).
 *
 * Callers have already proved the pointer lies outside every gomalloc arena
 * (the arena index has no entry for it) and that the option is on. Each
 * function returns false when there is no next allocator to hand the
 * pointer to (static link, or the next definition is gomalloc's own): the
 * caller then reports the pointer as misuse.
 */
#ifndef GOMALLOC_FOREIGN_H
#define GOMALLOC_FOREIGN_H

#include <stdbool.h>
#include <stddef.h>

/* The next free(p). */
bool foreign_free(void *p);
/* *out = the next malloc_usable_size(p). */
bool foreign_usable_size(const void *p, size_t *out);
/* *out = a gomalloc block of size bytes holding the first
 * min(usable, size) bytes of p; p goes to the next free. *out is NULL
 * (errno ENOMEM, p untouched) when gomalloc is out of memory. */
bool foreign_realloc(void *p, size_t size, void **out);

#endif /* GOMALLOC_FOREIGN_H */

/*
 * stats.h: statistics (interface of stats.c). Go counterpart: mstats.go.
 */
#ifndef GOMALLOC_STATS_H
#define GOMALLOC_STATS_H

#include "gomalloc.h"

#include <stdbool.h>

/* gm_read_memstats; locked: the caller holds the cache list lock, the heap
 * lock and the span-record locks (malloc_lock_all). */
void memstats_read(struct gm_memstats *st, bool locked);
/* Print the statistics as GOMALLOC_STATS asks (called at exit). */
void stats_at_exit(void);
/* Check the identities between the numbers; returns 0 or writes a
 * description of the first broken one into why. */
int stats_check_identities(const struct gm_memstats *st, char *why, size_t cap);

#endif /* GOMALLOC_STATS_H */

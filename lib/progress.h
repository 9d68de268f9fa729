/* progress: a one-line progress display for long file operations (bytes,
 * percentage, rate, ETA), redrawn at most ten times a second on a
 * terminal and silent otherwise. No trust boundary: local display only. */
#ifndef AT_PROGRESS_H
#define AT_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    bool enabled, drawn;
    const char *label;
    double start, last;
} at_progress;

/* enabled: draw at all (the caller decides: a TTY and not --quiet). */
void at_progress_init(at_progress *p, FILE *f, bool enabled, const char *label);
/* An at_sealfile_progress_fn: arg is the at_progress. */
void at_progress_update(void *arg, uint64_t done, uint64_t total);
/* Erase the line if one was drawn. */
void at_progress_finish(at_progress *p);
/* Seconds since init. */
double at_progress_elapsed(const at_progress *p);
/* "1.50 GiB", "512 B". */
void at_progress_bytes(uint64_t n, char *out, size_t cap);

#endif

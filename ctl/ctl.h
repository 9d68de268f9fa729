/* ctl: the subcommands of attestctl and the small helpers they share
 * (reading files, exit codes). Each cmd_* gets argv with argv[0] = its name. */
#ifndef AT_CTL_H
#define AT_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

int cmd_version(int argc, char **argv);
int cmd_hpke(int argc, char **argv);
int cmd_ohttp(int argc, char **argv);

/* Read a whole file ("-" = stdin) of at most max bytes. Caller frees *out.
 * Returns 0, or prints why to stderr and returns -1. */
int ctl_read_file(const char *path, size_t max, uint8_t **out, size_t *len);
/* Write bytes to a file created with the given mode. 0 or -1 (printed). */
int ctl_write_file(const char *path, const void *p, size_t len, int mode);

#endif

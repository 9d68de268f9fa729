/* outfile: an output file that appears whole or not at all. Bytes go to a
 * temporary file in the target's folder (mode 0600); commit fsyncs it,
 * renames it over the target (refusing an existing target unless
 * overwrite) and fsyncs the folder; abort removes the temporary file. An
 * output that is the same file as an input (same device and inode: the
 * same name, a hard link or a symlink) is refused before anything is
 * written, so a model cannot be destroyed by sealing it onto itself. */
#ifndef AT_OUTFILE_H
#define AT_OUTFILE_H

#include <stdbool.h>

#include "err.h"

typedef struct {
    int fd;        /* write here between open and commit; -1 otherwise */
    char *target;  /* final path (a symlink's target when the path was one) */
    char *tmp;     /* temporary path while open */
    bool overwrite;
    bool committed;
} at_outfile;

/* Start an output for path. An existing path is refused with AT_E_CONFLICT
 * unless overwrite; a path that is the same file as the open file
 * descriptor same_as (-1: none) is refused with AT_E_CONFLICT always. On
 * failure nothing is created and o needs no cleanup. */
at_err at_outfile_open(at_outfile *o, const char *path, bool overwrite, int same_as,
                       at_diag *d) AT_MUST_USE;
/* fsync, rename into place (no replace unless overwrite), fsync the folder.
 * On failure the temporary file is removed. */
at_err at_outfile_commit(at_outfile *o, at_diag *d) AT_MUST_USE;
/* Remove the temporary file if not committed; frees o's strings. Safe on a
 * zeroed, failed-to-open, committed or already cleaned up outfile. */
void at_outfile_cleanup(at_outfile *o);
/* Remove a committed output again (a later step of the same operation
 * failed). */
void at_outfile_unlink(at_outfile *o);

#endif

/* file: files that appear whole or not at all, the one copy of the
 * temporary file + fsync + rename + cleanup steps. Two ways in:
 * - at_outfile: a streamed output (a sealed or opened model). Bytes go to a
 *   temporary file "<target>.tmp-XXXXXX" in the target's folder (mode
 *   0600); commit fsyncs it, renames it over the target (refusing an
 *   existing target unless overwrite) and fsyncs the folder; cleanup
 *   removes the temporary file. An output that is the same file as an
 *   input (same device and inode: the same name, a hard link or a symlink)
 *   is refused before anything is written, so a model cannot be destroyed
 *   by sealing it onto itself. A path that is a symlink writes its target.
 * - at_file_write_atomic: a whole small file in one call, for files that
 *   hold secrets (the bootstrap admin token, the storage key, attestctl's
 *   key and state files). A reader sees the old file, no file, or the
 *   whole new one: never a partial write that the next start would accept.
 * A leftover temporary file (a crash mid-write) is never read. */
#ifndef AT_FILE_H
#define AT_FILE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

typedef struct {
    int fd;       /* write here between open and commit; -1 otherwise */
    char *target; /* final path (a symlink's target when the path was one) */
    char *tmp;    /* temporary path while open */
    bool overwrite;
    bool committed;
} at_outfile;

/* Start an output for path. An existing path is refused with AT_E_CONFLICT
 * unless overwrite; a path that is the same file as the open file
 * descriptor same_as (-1: none) is refused with AT_E_CONFLICT always; an
 * empty path is AT_E_BAD_REQUEST; a temporary file that cannot be created
 * is AT_E_IO. On failure nothing is created and o needs no cleanup. */
at_err at_outfile_open(at_outfile *o, const char *path, bool overwrite, int same_as, at_diag *d) AT_MUST_USE;
/* fsync, rename into place (no replace unless overwrite: AT_E_CONFLICT when
 * the target appeared meanwhile), fsync the folder (AT_E_IO when that
 * fails; the file is in place then). On failure before the rename the
 * temporary file is removed. */
at_err at_outfile_commit(at_outfile *o, at_diag *d) AT_MUST_USE;
/* Remove the temporary file if not committed; frees o's strings. Safe on a
 * zeroed, failed-to-open, committed or already cleaned up outfile. */
void at_outfile_cleanup(at_outfile *o);
/* Remove a committed output again (a later step of the same operation
 * failed). */
void at_outfile_unlink(at_outfile *o);

/* write() all n bytes, retrying on EINTR and short writes; false on any
 * other failure (errno says why; 0 after a write of nothing). */
bool at_file_write_full(int fd, const uint8_t *p, size_t n);

/* Write data to path through an at_outfile created with `mode`; replaces
 * an existing path unless exclusive. On any failure path is left as it
 * was. exclusive and path exists: AT_E_CONFLICT; any other failure:
 * AT_E_IO (the diag names path and the system error). The caller owns and
 * wipes data. */
at_err at_file_write_atomic(const char *path, at_span data, mode_t mode, bool exclusive,
                            at_diag *d) AT_MUST_USE;

#endif

/* file: whole small files written atomically, for files that hold secrets
 * (the bootstrap admin token, the storage key, attestctl's key and state
 * files). A reader sees the old file, no file, or the whole new one: never
 * a partial write that the next start would accept. */
#ifndef AT_FILE_H
#define AT_FILE_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"

/* Write data to path: a temporary file in path's folder ("<path>.tmp-XXXXXX",
 * created with `mode`), write all, fsync, then rename it over path (or,
 * when exclusive, link it to path, which fails when path exists), and fsync
 * the folder. On any failure the temporary file is removed and path is left
 * as it was. A leftover temporary file (a crash mid-write) is never read.
 * exclusive and path exists: AT_E_CONFLICT; any other failure: AT_E_IO
 * (the diag names path and the system error). The caller owns and wipes data. */
/* write() all n bytes, retrying on EINTR and short writes; false on any
 * other failure (errno says why; 0 after a write of nothing). */
bool at_file_write_full(int fd, const uint8_t *p, size_t n);

at_err at_file_write_atomic(const char *path, at_span data, mode_t mode, bool exclusive,
                            at_diag *d) AT_MUST_USE;

#endif

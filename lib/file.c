/* file: atomic writes of small files (temporary file, fsync, rename, fsync
 * of the folder). Paths come from the operator's configuration; the data
 * is the caller's (often a secret: this module keeps no copy of it). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

bool at_file_write_full(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* fsync the folder holding path, so the rename (or link) is durable. */
static bool sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return false;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

at_err at_file_write_atomic(const char *path, at_span data, mode_t mode, bool exclusive,
                            at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char tmp[4096];
    int fd = -1, n = snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path);
    bool made = false;
    AT_ENSURE(path && *path && n > 0 && (size_t)n < sizeof tmp, d, AT_E_IO,
              "file: path of %d bytes, expected 1 to %zu", n, sizeof tmp - 12);
    AT_ENSURE((fd = mkostemp(tmp, O_CLOEXEC)) >= 0, d, AT_E_IO, "%s: cannot create a temporary file: %s",
              path, strerror(errno));
    made = true;
    AT_ENSURE(fchmod(fd, mode) == 0, d, AT_E_IO, "%s: chmod: %s", tmp, strerror(errno));
    errno = 0;
    AT_ENSURE(at_file_write_full(fd, data.p, data.len), d, AT_E_IO, "%s: write failed: %s", tmp,
              errno ? strerror(errno) : "short write");
    AT_ENSURE(fsync(fd) == 0, d, AT_E_IO, "%s: fsync: %s", tmp, strerror(errno));
    int c = close(fd);
    fd = -1;
    AT_ENSURE(c == 0, d, AT_E_IO, "%s: close: %s", tmp, strerror(errno));
    if (exclusive) {
        /* link() refuses an existing path, like O_EXCL did. */
        if (link(tmp, path) != 0) {
            rc = errno == EEXIST ? at_fail(d, AT_E_CONFLICT, "%s: exists already", path)
                                 : at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
            goto out;
        }
        unlink(tmp);
    } else {
        AT_ENSURE(rename(tmp, path) == 0, d, AT_E_IO, "%s: rename: %s", path, strerror(errno));
    }
    made = false;
    AT_ENSURE(sync_dir(path), d, AT_E_IO, "%s: fsync of the folder: %s", path, strerror(errno));
    rc = AT_OK;
out:
    if (fd >= 0)
        close(fd);
    if (made)
        unlink(tmp);
    return rc;
}

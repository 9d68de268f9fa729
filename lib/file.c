/* file: whole-or-nothing files (see file.h). Paths come from the local
 * user or the operator's configuration; the folder may be shared, so the
 * temporary name is made by mkostemp and the final step refuses to replace
 * what appeared meanwhile. The data is the caller's (often a secret: this
 * module keeps no copy of it). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_SUFFIX ".tmp-XXXXXX"

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

at_err at_outfile_open(at_outfile *o, const char *path, bool overwrite, int same_as, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char *target = NULL, *tmp = NULL;
    int fd = -1;
    struct stat st, lst, in;
    memset(o, 0, sizeof *o);
    o->fd = -1;
    AT_ENSURE(path && *path, d, AT_E_BAD_REQUEST, "output: empty path");
    if (stat(path, &st) == 0) {
        if (same_as >= 0 && fstat(same_as, &in) == 0)
            AT_ENSURE(!(st.st_dev == in.st_dev && st.st_ino == in.st_ino), d, AT_E_CONFLICT,
                      "%s: is the same file as the input (device %ju, inode %ju); not writing over it", path,
                      (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
        AT_ENSURE(!S_ISDIR(st.st_mode), d, AT_E_CONFLICT, "%s: is a directory", path);
        AT_ENSURE(overwrite, d, AT_E_CONFLICT, "%s: exists already; not replacing it", path);
    } else {
        AT_ENSURE(errno == ENOENT, d, AT_E_IO, "%s: %s", path, strerror(errno));
        AT_ENSURE(lstat(path, &lst) != 0, d, AT_E_CONFLICT, "%s: a symlink to nowhere; not following it",
                  path);
    }
    /* Writing through a symlink replaces its target, as a plain open would. */
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode))
        target = realpath(path, NULL);
    else
        target = strdup(path);
    AT_ENSURE(target, d, AT_E_IO, "%s: %s", path, strerror(errno));
    size_t n = strlen(target) + sizeof TMP_SUFFIX;
    AT_ENSURE((tmp = malloc(n)), d, AT_E_INTERNAL, "out of memory");
    snprintf(tmp, n, "%s" TMP_SUFFIX, target);
    AT_ENSURE((fd = mkostemp(tmp, O_CLOEXEC)) >= 0, d, AT_E_IO,
              "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
    o->fd = fd;
    o->target = target;
    o->tmp = tmp;
    o->overwrite = overwrite;
    target = tmp = NULL;
    rc = AT_OK;
out:
    free(target);
    free(tmp);
    return rc;
}

/* fsync the folder holding path, so the rename (or link) is durable. */
static bool sync_folder(const char *path)
{
    char *c = strdup(path);
    if (!c)
        return false;
    int dfd = open(dirname(c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(c);
    if (dfd < 0)
        return false;
    bool ok = fsync(dfd) == 0;
    close(dfd);
    return ok;
}

at_err at_outfile_commit(at_outfile *o, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE(o->fd >= 0 && o->tmp && !o->committed, d, AT_E_INTERNAL, "output: not open");
    AT_ENSURE(fsync(o->fd) == 0, d, AT_E_IO, "%s: fsync: %s", o->target, strerror(errno));
    int c = close(o->fd);
    o->fd = -1;
    AT_ENSURE(c == 0, d, AT_E_IO, "%s: close: %s", o->target, strerror(errno));
    if (o->overwrite) {
        AT_ENSURE(rename(o->tmp, o->target) == 0, d, AT_E_IO, "%s: rename: %s", o->target, strerror(errno));
    } else if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->target, RENAME_NOREPLACE) != 0) {
        AT_ENSURE(errno != EEXIST, d, AT_E_CONFLICT,
                  "%s: exists already (appeared meanwhile); not replacing it", o->target);
        /* File systems without RENAME_NOREPLACE: link() never replaces. */
        AT_ENSURE(errno == EINVAL || errno == ENOSYS, d, AT_E_IO, "%s: %s", o->target, strerror(errno));
        if (link(o->tmp, o->target) != 0) {
            rc = errno == EEXIST
                     ? at_fail(d, AT_E_CONFLICT, "%s: exists already; not replacing it", o->target)
                     : at_fail(d, AT_E_IO, "%s: %s", o->target, strerror(errno));
            goto out;
        }
        (void)unlink(o->tmp);
    }
    o->committed = true;
    AT_ENSURE(sync_folder(o->target), d, AT_E_IO, "%s: fsync of the folder: %s", o->target, strerror(errno));
    rc = AT_OK;
out:
    if (rc != AT_OK && o->tmp && !o->committed)
        (void)unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    return rc;
}

void at_outfile_cleanup(at_outfile *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    if (o->tmp && !o->committed)
        (void)unlink(o->tmp);
    free(o->tmp);
    o->tmp = NULL;
    free(o->target);
    o->target = NULL;
}

void at_outfile_unlink(at_outfile *o)
{
    if (o->committed && o->target) {
        (void)unlink(o->target);
        if (!sync_folder(o->target)) {
            /* the removal stands; durability of it is best effort */
        }
        o->committed = false;
    }
}

at_err at_file_write_atomic(const char *path, at_span data, mode_t mode, bool exclusive, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    at_outfile o = {.fd = -1};
    AT_ENSURE(path && *path, d, AT_E_IO, "file: empty path");
    AT_TRY(at_outfile_open(&o, path, !exclusive, -1, d));
    AT_ENSURE(fchmod(o.fd, mode) == 0, d, AT_E_IO, "%s: chmod: %s", o.tmp, strerror(errno));
    errno = 0;
    AT_ENSURE(at_file_write_full(o.fd, data.p, data.len), d, AT_E_IO, "%s: write failed: %s", o.tmp,
              errno ? strerror(errno) : "short write");
    AT_TRY(at_outfile_commit(&o, d));
    rc = AT_OK;
out:
    at_outfile_cleanup(&o);
    return rc;
}

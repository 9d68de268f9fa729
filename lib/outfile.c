/* outfile: whole-or-nothing output files (see outfile.h). Paths come from
 * the local user; the folder may be shared, so the temporary name is made
 * by mkostemp and the final step refuses to replace what appeared meanwhile. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *str_dup_fmt(const char *dir, const char *base)
{
    size_t n = strlen(dir) + strlen(base) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/.%s.XXXXXX", dir, base);
    return p;
}

at_err at_outfile_open(at_outfile *o, const char *path, bool overwrite, int same_as, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    char *target = NULL, *tmp = NULL, *dcopy = NULL, *bcopy = NULL;
    int fd = -1;
    struct stat st, lst, in;
    memset(o, 0, sizeof *o);
    o->fd = -1;
    AT_ENSURE(path && *path, d, AT_E_BAD_REQUEST, "output: empty path");
    if (stat(path, &st) == 0) {
        if (same_as >= 0 && fstat(same_as, &in) == 0)
            AT_ENSURE(!(st.st_dev == in.st_dev && st.st_ino == in.st_ino), d, AT_E_CONFLICT,
                      "%s: is the same file as the input (device %ju, inode %ju); not writing over it",
                      path, (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
        AT_ENSURE(!S_ISDIR(st.st_mode), d, AT_E_CONFLICT, "%s: is a directory", path);
        AT_ENSURE(overwrite, d, AT_E_CONFLICT, "%s: exists; not replacing it (--force replaces it)", path);
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
    AT_ENSURE((dcopy = strdup(target)) && (bcopy = strdup(target)), d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE((tmp = str_dup_fmt(dirname(dcopy), basename(bcopy))), d, AT_E_INTERNAL, "out of memory");
    AT_ENSURE((fd = mkostemp(tmp, O_CLOEXEC)) >= 0, d, AT_E_IO, "%s: cannot create a file next to it: %s",
              path, strerror(errno));
    o->fd = fd;
    o->target = target;
    o->tmp = tmp;
    o->overwrite = overwrite;
    target = tmp = NULL;
    rc = AT_OK;
out:
    free(target);
    free(tmp);
    free(dcopy);
    free(bcopy);
    return rc;
}

static void sync_folder(const char *target)
{
    char *c = strdup(target);
    if (!c)
        return;
    int dfd = open(dirname(c), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    free(c);
}

at_err at_outfile_commit(at_outfile *o, at_diag *d)
{
    at_err rc = AT_E_INTERNAL;
    AT_ENSURE(o->fd >= 0 && o->tmp && !o->committed, d, AT_E_INTERNAL, "output: not open");
    AT_ENSURE(fsync(o->fd) == 0, d, AT_E_IO, "%s: %s", o->target, strerror(errno));
    int c = close(o->fd);
    o->fd = -1;
    AT_ENSURE(c == 0, d, AT_E_IO, "%s: %s", o->target, strerror(errno));
    if (o->overwrite) {
        AT_ENSURE(rename(o->tmp, o->target) == 0, d, AT_E_IO, "%s: %s", o->target, strerror(errno));
    } else if (renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->target, RENAME_NOREPLACE) != 0) {
        AT_ENSURE(errno != EEXIST, d, AT_E_CONFLICT, "%s: appeared meanwhile; not replacing it", o->target);
        /* File systems without RENAME_NOREPLACE: link() never replaces. */
        AT_ENSURE(errno == EINVAL || errno == ENOSYS, d, AT_E_IO, "%s: %s", o->target, strerror(errno));
        AT_ENSURE(link(o->tmp, o->target) == 0, d, errno == EEXIST ? AT_E_CONFLICT : AT_E_IO, "%s: %s",
                  o->target, strerror(errno));
        (void)unlink(o->tmp);
    }
    o->committed = true;
    sync_folder(o->target);
    rc = AT_OK;
out:
    if (rc != AT_OK && o->tmp)
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
        sync_folder(o->target);
        o->committed = false;
    }
}

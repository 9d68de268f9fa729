/* ctl util: file I/O shared by the attestctl subcommands. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "file.h"
#include "token.h"

int ctl_read_file(const char *path, size_t max, uint8_t **out, size_t *len)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "attestctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    at_buf b;
    at_buf_init(&b);
    /* No at_buf max here: reserving a whole chunk ahead would refuse every
     * file within 4096 bytes of max (and any max below 4096). The size is
     * checked after each read instead, so memory stays within about twice
     * max. */
    for (;;) {
        if (b.len > max) {
            fprintf(stderr, "attestctl: %s: larger than %zu bytes\n", path, max);
            goto fail;
        }
        if (at_buf_reserve(&b, 4096) != AT_OK) {
            fprintf(stderr, "attestctl: %s: out of memory\n", path);
            goto fail;
        }
        ssize_t n = read(fd, b.p + b.len, b.cap - b.len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "attestctl: %s: %s\n", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
    }
    if (b.len > max) {
        fprintf(stderr, "attestctl: %s: larger than %zu bytes\n", path, max);
        goto fail;
    }
    if (fd != 0)
        close(fd);
    *len = b.len;
    *out = b.len ? at_buf_take(&b, NULL) : calloc(1, 1);
    return *out ? 0 : -1;
fail:
    if (fd != 0)
        close(fd);
    at_buf_cleanup(&b);
    return -1;
}

int ctl_write_file(const char *path, const void *p, size_t len, int mode)
{
    struct stat sb;
    if (strcmp(path, "-") != 0 && (stat(path, &sb) != 0 || S_ISREG(sb.st_mode))) {
        /* A regular file (keys, state): all or nothing (lib/file). */
        at_diag d = {{0}};
        if (at_file_write_atomic(path, AT_SPAN(p, len), (mode_t)mode, false, &d) != AT_OK) {
            fprintf(stderr, "attestctl: %s\n", d.msg);
            return -1;
        }
        return 0;
    }
    /* stdout, or a device or pipe named by path (/dev/null, /dev/stdout):
     * written in place, never replaced. */
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "attestctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(p, 1, len, f) == len;
    if (f == stdout)
        ok = ok && fflush(f) == 0;
    else
        ok = (fclose(f) == 0) && ok;
    if (!ok) {
        fprintf(stderr, "attestctl: %s: write failed\n", path);
        return -1;
    }
    return 0;
}

void ctl_json_load_error(const char *who, const char *path, const json_error_t *je)
{
    if (je->line < 1) /* the file did not open: jansson's text names it and why */
        fprintf(stderr, "attestctl %s: %s\n", who, je->text);
    else
        fprintf(stderr, "attestctl %s: %s: line %d column %d: %s\n", who, path, je->line, je->column,
                je->text);
}

bool ctl_is_help(const char *arg)
{
    return arg && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0);
}

int ctl_write_token(const char *out_path, const char *token)
{
    if (!out_path) {
        printf("%s\n", token);
        return fflush(stdout) == 0 ? 0 : -1;
    }
    char line[AT_TOKEN_MAX + 2];
    int n = snprintf(line, sizeof line, "%s\n", token);
    int rc = n > 0 && (size_t)n < sizeof line ? ctl_write_file(out_path, line, (size_t)n, 0600) : -1;
    at_wipe(line, sizeof line);
    return rc;
}

int cmd_version(int argc, char **argv)
{
    printf("attestctl %s\n", PACKAGE_VERSION);
    return CTL_OK;
}

at_err ctl_bhttp_add_headers(at_bhttp_msg *m, const char *const *headers, size_t n, bool *have_ctype,
                             bool *have_date, at_diag *d)
{
    for (size_t i = 0; i < n; i++) {
        const char *h = headers[i], *colon = strchr(h, ':');
        char name[256];
        if (!colon || colon == h || (size_t)(colon - h) >= sizeof name)
            return at_fail(d, AT_E_BAD_REQUEST,
                           "--header '%.64s': expected 'Name: value' (a name under %zu bytes)", h,
                           sizeof name);
        memcpy(name, h, (size_t)(colon - h));
        name[colon - h] = '\0';
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        at_err rc = at_bhttp_add_header(m, name, AT_SPAN(v, vlen), d);
        if (rc != AT_OK) {
            at_diag_prefix(d, "--header '%.64s': ", h);
            return rc;
        }
        if (have_ctype && strcasecmp(name, "content-type") == 0)
            *have_ctype = true;
        if (have_date && strcasecmp(name, "date") == 0)
            *have_date = true;
    }
    return AT_OK;
}

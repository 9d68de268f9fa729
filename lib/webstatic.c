/* webstatic: serves an allow-listed set of static files read into memory
 * at start (see webstatic.h). Requests are untrusted: a path is only ever
 * compared with the allow-list, never used to open a file. */
#include "webstatic.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct file {
    char name[64];
    const char *content_type;
    char *data;
    size_t len;
    char etag[40]; /* "\"" + 32 hex digits of the SHA-256 + "\"" */
};

struct at_webstatic {
    char prefix[64];
    struct file files[AT_WEBSTATIC_MAX_FILES];
    size_t n;
};

const char *at_webstatic_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = name ? strrchr(name, '.') : NULL;
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

static bool is_plain_name(const char *s)
{
    if (!s || !*s || *s == '.' || strlen(s) >= sizeof((struct file *)0)->name)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == strlen(s);
}

static at_err read_file(const char *root, struct file *f, at_diag *d)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", root, f->name) >= sizeof path)
        return at_fail(d, AT_E_BAD_REQUEST, "web root: longer than %zu bytes", sizeof path - 64);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return at_fail(d, AT_E_IO, "%s: %s", path, strerror(errno));
    at_err rc = AT_OK;
    f->data = malloc(AT_WEBSTATIC_MAX_FILE + 1);
    if (!f->data) {
        rc = at_fail(d, AT_E_INTERNAL, "%s: out of memory", path);
    } else {
        f->len = fread(f->data, 1, AT_WEBSTATIC_MAX_FILE + 1, fp);
        if (ferror(fp))
            rc = at_fail(d, AT_E_IO, "%s: read error", path);
        else if (f->len > AT_WEBSTATIC_MAX_FILE)
            rc = at_fail(d, AT_E_TOO_LARGE, "%s: larger than %d bytes", path, AT_WEBSTATIC_MAX_FILE);
    }
    fclose(fp);
    if (rc != AT_OK)
        return rc;
    char hex[65];
    if ((rc = at_sha256_hex(AT_SPAN(f->data, f->len), hex, d)) != AT_OK)
        return rc;
    snprintf(f->etag, sizeof f->etag, "\"%.32s\"", hex);
    return AT_OK;
}

at_err at_webstatic_new(const char *root, const char *prefix, const char *const *names, size_t n,
                        at_webstatic **out, at_diag *d)
{
    size_t plen = prefix ? strlen(prefix) : 0;
    if (!root || !*root)
        return at_fail(d, AT_E_BAD_REQUEST, "web root: empty");
    if (plen == 0 || plen >= sizeof((at_webstatic *)0)->prefix || prefix[0] != '/' || prefix[plen - 1] != '/')
        return at_fail(d, AT_E_BAD_REQUEST, "prefix: expected a path starting and ending with '/', got '%s'",
                       prefix ? prefix : "(null)");
    if (n > AT_WEBSTATIC_MAX_FILES)
        return at_fail(d, AT_E_TOO_LARGE, "files: %zu given, at most %d", n, AT_WEBSTATIC_MAX_FILES);
    for (size_t i = 0; i < n; i++)
        if (!is_plain_name(names[i]) || !at_webstatic_content_type(names[i]))
            return at_fail(d, AT_E_BAD_REQUEST,
                           "file name: expected a plain name with a known extension, got '%s'",
                           names[i] ? names[i] : "(null)");
    at_webstatic *w = calloc(1, sizeof *w);
    if (!w)
        return at_fail(d, AT_E_INTERNAL, "out of memory");
    snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
    for (size_t i = 0; i < n; i++) {
        struct file *f = &w->files[w->n++];
        snprintf(f->name, sizeof f->name, "%s", names[i]);
        f->content_type = at_webstatic_content_type(names[i]);
        at_err rc = read_file(root, f, d);
        if (rc != AT_OK) {
            at_webstatic_free(w);
            return rc;
        }
    }
    *out = w;
    return AT_OK;
}

void at_webstatic_free(at_webstatic *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++)
        free(w->files[i].data);
    free(w);
}

bool at_webstatic_serve(const at_webstatic *w, const char *method, const char *path,
                        const char *if_none_match, at_http_resp *resp)
{
    if (!w || !method || !path || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return false;
    size_t plen = strlen(w->prefix);
    if (strncmp(path, w->prefix, plen) != 0)
        return false;
    const char *name = path[plen] ? path + plen : "index.html";
    const struct file *f = NULL;
    for (size_t i = 0; i < w->n && !f; i++)
        if (strcmp(w->files[i].name, name) == 0)
            f = &w->files[i];
    if (!f)
        return false;
    snprintf(resp->headers, sizeof resp->headers,
             "Content-Security-Policy: %s\nReferrer-Policy: no-referrer\nCache-Control: no-cache\n"
             "ETag: %s\n",
             AT_WEBSTATIC_CSP, f->etag);
    resp->content_type = f->content_type;
    /* A weak comparison is not needed: the tags are ours and strong. */
    if (if_none_match && strstr(if_none_match, f->etag)) {
        resp->status = 304;
        resp->body = NULL;
        resp->len = 0;
        return true;
    }
    resp->status = 200;
    resp->body = f->len ? malloc(f->len) : NULL;
    if (f->len && !resp->body) {
        at_http_error(resp, AT_E_INTERNAL, "out of memory", -1);
        return true;
    }
    if (f->len)
        memcpy(resp->body, f->data, f->len);
    resp->len = f->len;
    return true;
}

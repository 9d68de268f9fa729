/* webstatic: a fixed set of static files (a web page's HTML, JS, CSS) served
 * under a URL prefix: the gateway's chat page, the verifier's console. The
 * files are named by an exact allow-list and read whole into memory at
 * start, so a request can only ever get one of them (no path is ever built
 * from a request: no traversal by construction) and serving never touches
 * the filesystem. Every answer carries a strict Content-Security-Policy
 * (nothing inline, nothing from another origin), nosniff, no referrer, an
 * ETag (If-None-Match answers 304) and Cache-Control: no-cache. */
#ifndef AT_WEBSTATIC_H
#define AT_WEBSTATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "httpd.h"

#define AT_WEBSTATIC_CSP                                                            \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define AT_WEBSTATIC_MAX_FILE (1024 * 1024) /* a page's file; larger is a packaging mistake */
#define AT_WEBSTATIC_MAX_FILES 32

typedef struct at_webstatic at_webstatic;

/* Read names[0..n) from the folder root (each a plain file name: letters,
 * digits, '.', '-', '_', not starting with '.', with an extension
 * at_webstatic_content_type knows). prefix is the URL path they are served
 * under ("/" or "/console/": it MUST start and end with '/'); the prefix
 * itself serves "index.html" when it is one of the names. Errors:
 * AT_E_BAD_REQUEST for a bad name or prefix (naming it), AT_E_IO for a file
 * that cannot be read (naming its path), AT_E_TOO_LARGE over
 * AT_WEBSTATIC_MAX_FILE. Caller frees *out with at_webstatic_free. */
at_err at_webstatic_new(const char *root, const char *prefix, const char *const *names, size_t n,
                        at_webstatic **out, at_diag *d) AT_MUST_USE;
void at_webstatic_free(at_webstatic *w); /* accepts NULL */

/* If method and path name one of the files (GET or HEAD, the exact path),
 * fill resp with it (200, or 304 when if_none_match, which may be NULL,
 * is its ETag) and return true; otherwise leave resp alone and return
 * false. Thread-safe (the set is read-only after at_webstatic_new). */
bool at_webstatic_serve(const at_webstatic *w, const char *method, const char *path,
                        const char *if_none_match, at_http_resp *resp);

/* The Content-Type for a file name by its extension (.html, .js, .css,
 * .svg, .png, .ico, .json, .txt), or NULL. */
const char *at_webstatic_content_type(const char *name);

#endif

/* target: the forwardable request targets (see target.h). */
#include "target.h"

#include <string.h>
#include <strings.h>

/* A segment [s, s+n) that is "." or "..", literal or with %2e for a dot. */
static bool dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '.') {
            i++;
        } else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return false;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

static at_err check(const char *target, bool with_query, bool v1_only, at_diag *d)
{
    size_t len = strlen(target);
    int shown = len > 64 ? 64 : (int)len;
    const char *q = strchr(target, '?');
    if (q && !with_query)
        return at_fail(d, AT_E_BAD_REQUEST, "path: contains '?' (an escaped %%3F), got '%.*s'", shown,
                       target);
    size_t plen = q ? (size_t)(q - target) : len;
    if (!v1_only && (plen == 0 || target[0] != '/'))
        return at_fail(d, AT_E_BAD_REQUEST, "path: expected /..., got '%.*s'", shown, target);
    if (v1_only && !(plen == 3 && strncmp(target, "/v1", 3) == 0) &&
        !(plen >= 4 && strncmp(target, "/v1/", 4) == 0))
        return at_fail(d, AT_E_BAD_REQUEST, "path: expected /v1/..., got '%.*s'", shown, target);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || (c == '\\' && i < plen))
            return at_fail(d, AT_E_BAD_REQUEST, "path: byte 0x%02x at offset %zu is not allowed in a target",
                           c, i);
    }
    for (size_t i = 1; i <= plen;) {
        size_t e = i;
        while (e < plen && target[e] != '/')
            e++;
        if (dot_segment(target + i, e - i))
            return at_fail(d, AT_E_BAD_REQUEST, "path: dot segment at offset %zu, got '%.*s'", i, shown,
                           target);
        i = e + 1;
    }
    return AT_OK;
}

at_err at_target_check(const char *target, bool with_query, at_diag *d)
{
    return check(target, with_query, true, d);
}

at_err at_target_check_any(const char *target, at_diag *d) { return check(target, true, false, d); }

bool at_target_hop_by_hop(const char *name)
{
    static const char *drop[] = {"host",
                                 "content-length",
                                 "connection",
                                 "transfer-encoding",
                                 "te",
                                 "upgrade",
                                 "keep-alive",
                                 "proxy-connection",
                                 "proxy-authorization",
                                 "expect",
                                 "trailer",
                                 NULL};
    for (const char **p = drop; *p; p++)
        if (strcasecmp(name, *p) == 0)
            return true;
    return false;
}

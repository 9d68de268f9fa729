/* err: code table lookups and diagnostics formatting. No trust boundary. */
#include "err.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *str;
    int http;
} table[AT_ERR_COUNT] = {
#define AT_ERR_ROW(sym, s, h) [sym] = {s, h},
    AT_ERROR_TABLE(AT_ERR_ROW)
#undef AT_ERR_ROW
};

const char *at_err_str(at_err e)
{
    if ((unsigned)e >= AT_ERR_COUNT)
        return "internal";
    return table[e].str;
}

int at_err_http_status(at_err e)
{
    if ((unsigned)e >= AT_ERR_COUNT)
        return 500;
    return table[e].http;
}

at_err at_err_from_str(const char *s)
{
    for (int i = 0; s && i < AT_ERR_COUNT; i++)
        if (strcmp(table[i].str, s) == 0)
            return (at_err)i;
    return AT_E_INTERNAL;
}

at_err at_fail(at_diag *d, at_err code, const char *fmt, ...)
{
    if (d) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->msg, sizeof d->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void at_diag_prefix(at_diag *d, const char *fmt, ...)
{
    if (!d)
        return;
    char pre[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t plen = strlen(pre), olen = strnlen(d->msg, sizeof d->msg - 1);
    if (plen > sizeof d->msg - 1)
        plen = sizeof d->msg - 1;
    if (olen > sizeof d->msg - 1 - plen)
        olen = sizeof d->msg - 1 - plen;
    memmove(d->msg + plen, d->msg, olen);
    memcpy(d->msg, pre, plen);
    d->msg[plen + olen] = '\0';
}

void at_diag_add_openssl(at_diag *d)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        if (!d)
            continue;
        ERR_error_string_n(e, buf, sizeof buf);
        size_t used = strnlen(d->msg, sizeof d->msg);
        if (used + 3 < sizeof d->msg)
            snprintf(d->msg + used, sizeof d->msg - used, " (%s)", buf);
    }
}

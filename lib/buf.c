/* buf: bounded reader and growable buffers. The reader is the trust
 * boundary for every byte-level parser in libattest. */
#include "buf.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool at_span_eq(at_span a, at_span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool at_span_eq_ct(at_span a, at_span b)
{
    if (a.len != b.len)
        return false;
    return a.len == 0 || CRYPTO_memcmp(a.p, b.p, a.len) == 0;
}

void at_reader_init(at_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = p ? len : 0;
    r->off = 0;
}

size_t at_reader_left(const at_reader *r) { return r->len - r->off; }

bool at_reader_at_end(const at_reader *r) { return r->off == r->len; }

bool at_reader_take(at_reader *r, size_t n, at_span *out)
{
    if (n > r->len - r->off)
        return false;
    if (out) {
        out->p = r->p + r->off;
        out->len = n;
    }
    r->off += n;
    return true;
}

bool at_reader_skip(at_reader *r, size_t n) { return at_reader_take(r, n, NULL); }

static bool take_be(at_reader *r, size_t n, uint64_t *v)
{
    at_span s;
    if (!at_reader_take(r, n, &s))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | s.p[i];
    *v = x;
    return true;
}

bool at_reader_u8(at_reader *r, uint8_t *v)
{
    uint64_t x;
    if (!take_be(r, 1, &x))
        return false;
    *v = (uint8_t)x;
    return true;
}

bool at_reader_u16(at_reader *r, uint16_t *v)
{
    uint64_t x;
    if (!take_be(r, 2, &x))
        return false;
    *v = (uint16_t)x;
    return true;
}

bool at_reader_u32(at_reader *r, uint32_t *v)
{
    uint64_t x;
    if (!take_be(r, 4, &x))
        return false;
    *v = (uint32_t)x;
    return true;
}

bool at_reader_u64(at_reader *r, uint64_t *v) { return take_be(r, 8, v); }

bool at_reader_sub(at_reader *r, size_t n, at_reader *sub)
{
    at_span s;
    if (!at_reader_take(r, n, &s))
        return false;
    at_reader_init(sub, s.p, s.len);
    return true;
}

bool at_reader_varint(at_reader *r, uint64_t *v)
{
    if (r->off == r->len)
        return false;
    size_t n = (size_t)1 << (r->p[r->off] >> 6);
    size_t save = r->off;
    uint64_t x;
    if (!take_be(r, n, &x)) {
        r->off = save;
        return false;
    }
    x &= (n == 8) ? 0x3fffffffffffffffULL : ((1ULL << (8 * n - 2)) - 1);
    *v = x;
    return true;
}

at_span at_reader_rest(at_reader *r)
{
    at_span s = {r->p + r->off, r->len - r->off};
    r->off = r->len;
    return s;
}

void at_buf_init(at_buf *b) { memset(b, 0, sizeof *b); }

void at_buf_init_secret(at_buf *b)
{
    at_buf_init(b);
    b->secret = true;
}

void at_buf_set_max(at_buf *b, size_t max) { b->max = max; }

at_err at_buf_status(const at_buf *b) { return b->status; }

at_err at_buf_reserve(at_buf *b, size_t more)
{
    if (b->status != AT_OK)
        return b->status;
    size_t need;
    size_t limit = b->max ? b->max : SIZE_MAX / 2;
    if (!at_size_add(b->len, more, &need) || need > limit)
        return b->status = AT_E_TOO_LARGE;
    if (need <= b->cap)
        return AT_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > limit / 2 ? limit : cap * 2;
    uint8_t *p = malloc(cap);
    if (!p)
        return b->status = AT_E_INTERNAL;
    if (b->len)
        memcpy(p, b->p, b->len);
    if (b->secret && b->p)
        OPENSSL_cleanse(b->p, b->cap);
    free(b->p);
    b->p = p;
    b->cap = cap;
    return AT_OK;
}

at_err at_buf_append(at_buf *b, const void *p, size_t n)
{
    at_err rc = at_buf_reserve(b, n);
    if (rc != AT_OK)
        return rc;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return AT_OK;
}

at_err at_buf_append_span(at_buf *b, at_span s) { return at_buf_append(b, s.p, s.len); }

static at_err put_be(at_buf *b, uint64_t v, size_t n)
{
    uint8_t tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return at_buf_append(b, tmp, n);
}

at_err at_buf_u8(at_buf *b, uint8_t v) { return put_be(b, v, 1); }
at_err at_buf_u16(at_buf *b, uint16_t v) { return put_be(b, v, 2); }
at_err at_buf_u32(at_buf *b, uint32_t v) { return put_be(b, v, 4); }
at_err at_buf_u64(at_buf *b, uint64_t v) { return put_be(b, v, 8); }

at_err at_buf_varint(at_buf *b, uint64_t v)
{
    if (v < 0x40)
        return put_be(b, v, 1);
    if (v < 0x4000)
        return put_be(b, v | 0x4000, 2);
    if (v < 0x40000000)
        return put_be(b, v | 0x80000000u, 4);
    if (v < 0x4000000000000000ULL)
        return put_be(b, v | 0xc000000000000000ULL, 8);
    return b->status = AT_E_TOO_LARGE;
}

at_err at_buf_printf(at_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return b->status = AT_E_INTERNAL;
    at_err rc = at_buf_reserve(b, (size_t)n + 1);
    if (rc != AT_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return AT_OK;
}

at_span at_buf_span(const at_buf *b) { return (at_span){b->p, b->len}; }

uint8_t *at_buf_take(at_buf *b, size_t *len)
{
    if (b->status != AT_OK || !b->p) {
        at_buf_cleanup(b);
        if (len)
            *len = 0;
        return NULL;
    }
    uint8_t *p = b->p;
    if (len)
        *len = b->len;
    bool secret = b->secret;
    at_buf_init(b);
    b->secret = secret;
    return p;
}

void at_buf_reset(at_buf *b)
{
    if (b->secret && b->p)
        OPENSSL_cleanse(b->p, b->cap);
    b->len = 0;
    b->status = AT_OK;
}

void at_buf_cleanup(at_buf *b)
{
    if (b->p && b->secret)
        OPENSSL_cleanse(b->p, b->cap);
    free(b->p);
    bool secret = b->secret;
    at_buf_init(b);
    b->secret = secret;
}

at_secret *at_secret_new(size_t len)
{
    at_secret *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = calloc(1, len ? len : 1);
    if (!s->p) {
        free(s);
        return NULL;
    }
    s->len = len;
    return s;
}

at_secret *at_secret_dup(at_span src)
{
    at_secret *s = at_secret_new(src.len);
    if (s && src.len)
        memcpy(s->p, src.p, src.len);
    return s;
}

void at_secret_free(at_secret *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s->p, s->len);
    free(s->p);
    free(s);
}

void at_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

void at_wipe_free(void *p, size_t n)
{
    at_wipe(p, n);
    free(p);
}
